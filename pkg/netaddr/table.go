// Package netaddr is the one table of the addresses a sandbox may never
// reach, or reach only when someone opens them on purpose, with the reason
// for each. The sandbox's NetworkPolicy (pkg/sandbox) and the egress proxy
// (pkg/egress/hosts) both derive from it, so the fence and the proxy cannot
// disagree about an address. It imports only the standard library.
package netaddr

import (
	"net/netip"
)

// Class says how far an address is from being reachable.
type Class int

const (
	// Public addresses are the internet.
	Public Class = iota
	// Private addresses (the cluster's and the company's networks, CGNAT,
	// documentation and other unrouted ranges) are reached only when
	// someone opens them on purpose: a fence destination that lies inside
	// them, or the proxy's egress install --private-cidr.
	Private
	// Never: loopback, link-local, cloud metadata and platform endpoints,
	// unspecified, multicast and broadcast. Opening a wider range never
	// opens these; the proxy never dials them.
	Never
)

func (c Class) String() string {
	switch c {
	case Public:
		return "public"
	case Private:
		return "private"
	}
	return "never reachable"
}

// Carried says what an address inside a Range that carries IPv4 addresses
// (Range.Carries) is judged by, in the proxy.
type Carried int

const (
	// CarriedIgnored: the range is judged as a whole (its Class).
	CarriedIgnored Carried = iota
	// CarriedNever: a carried Never address makes it Never; otherwise the
	// range's Class. 6to4: it tunnels to the address it carries.
	CarriedNever
	// CarriedDecides: the carried address's class is the address's class
	// (NAT64, IPv4-translated): DNS64 hands these out for public names,
	// and they must work.
	CarriedDecides
)

// Range is one entry of the table.
type Range struct {
	Prefix netip.Prefix
	Class  Class
	Why    string
	// Carries: every address inside carries an IPv4 address right after
	// the prefix (RFC 6052's layout; Embed) and reaches it. The fence
	// blocks the prefix whole, and each IPv4 entry again inside it, so a
	// destination that names the prefix on purpose (64:ff9b::/96, for the
	// public IPv4 internet through NAT64) never reaches private IPv4 or
	// the metadata endpoint through it.
	Carries bool
	// Judged says what the proxy makes of the carried address.
	Judged Carried
}

func r(cidr string, c Class, why string) Range {
	return Range{Prefix: netip.MustParsePrefix(cidr), Class: c, Why: why}
}

func carrier(cidr string, c Class, judged Carried, why string) Range {
	x := r(cidr, c, why)
	x.Carries, x.Judged = true, judged
	return x
}

// table: IPv4, then IPv6, then the IPv6 prefixes that carry IPv4. Entries
// may nest (a metadata address inside a private range): the most closed
// class of the entries that hold an address is its class, so a Never
// entry inside a Private one stays Never when the Private one is opened.
//
// IPv4-mapped addresses (::ffff:0:0/96) are not here: they never appear in
// a packet. A socket that connects to ::ffff:169.254.169.254 sends IPv4 to
// 169.254.169.254; the API server refuses them in a NetworkPolicy; the
// proxy unmaps them before it looks (Classify).
var table = []Range{
	r("0.0.0.0/8", Never, `"this network": 0.0.0.0 reaches the node itself`),
	r("10.0.0.0/8", Private, "private (RFC 1918)"),
	r("100.64.0.0/10", Private, "shared address space (CGNAT, RFC 6598), used by some clusters for pods and services"),
	r("100.100.100.200/32", Never, "cloud metadata (Alibaba Cloud)"),
	r("127.0.0.0/8", Never, "loopback"),
	r("168.63.129.16/32", Never, "cloud platform endpoint (Azure WireServer: VM agent, health probes, extension settings)"),
	r("169.254.0.0/16", Never, "link-local (cloud metadata lives here)"),
	r("169.254.0.23/32", Never, "link-local: cloud metadata (Tencent Cloud)"),
	r("169.254.42.42/32", Never, "link-local: cloud metadata (Scaleway)"),
	r("169.254.169.254/32", Never, "link-local: cloud metadata (AWS, GCP, Azure, Oracle, OpenStack, DigitalOcean, ...)"),
	r("169.254.170.2/32", Never, "link-local: cloud credentials (AWS ECS task metadata)"),
	r("169.254.170.23/32", Never, "link-local: cloud credentials (AWS EKS Pod Identity agent)"),
	r("172.16.0.0/12", Private, "private (RFC 1918)"),
	r("192.0.0.0/24", Private, "IETF protocol assignments (NAT64 discovery, DS-Lite)"),
	r("192.0.0.192/32", Never, "cloud metadata (Oracle Cloud)"),
	r("192.0.2.0/24", Private, "documentation (TEST-NET-1), not routed"),
	r("192.88.99.0/24", Private, "6to4 relay anycast (deprecated)"),
	r("192.168.0.0/16", Private, "private (RFC 1918)"),
	r("198.18.0.0/15", Private, "benchmarking, used as internal address space"),
	r("198.51.100.0/24", Private, "documentation (TEST-NET-2), not routed"),
	r("203.0.113.0/24", Private, "documentation (TEST-NET-3), not routed"),
	r("224.0.0.0/4", Never, "multicast"),
	r("240.0.0.0/4", Never, "reserved, and the broadcast address"),

	r("::/128", Never, "unspecified: reaches the node itself"),
	r("::1/128", Never, "loopback"),
	r("100::/64", Private, "discard-only"),
	r("2001::/32", Private, "Teredo: tunnels to an IPv4 address"),
	r("2001:10::/28", Private, "ORCHID, not routed"),
	r("2001:20::/28", Private, "ORCHIDv2, not routed"),
	r("2001:db8::/32", Private, "documentation, not routed"),
	r("3fff::/20", Private, "documentation, not routed"),
	r("fc00::/7", Private, "unique local addresses (private)"),
	r("fd00:42::42/128", Never, "cloud metadata (Scaleway, IPv6)"),
	r("fd00:a9fe:a9fe::1/128", Never, "cloud metadata (Akamai/Linode, IPv6)"),
	r("fd00:c1::a9fe:a9fe/128", Never, "cloud metadata (Oracle Cloud, IPv6)"),
	r("fd00:ec2::23/128", Never, "cloud credentials (AWS EKS Pod Identity agent, IPv6)"),
	r("fd00:ec2::254/128", Never, "cloud metadata (AWS, IPv6)"),
	r("fd20:ce::254/128", Never, "cloud metadata (GCP, IPv6)"),
	r("fe80::/10", Never, "link-local"),
	r("fec0::/10", Private, "site-local (deprecated, still routed by some stacks)"),
	r("ff00::/8", Never, "multicast"),

	carrier("::/96", Never, CarriedIgnored, "IPv4-compatible (deprecated), with the unspecified and loopback addresses"),
	carrier("::ffff:0:0:0/96", Private, CarriedDecides, "IPv4-translated (SIIT)"),
	carrier("64:ff9b::/96", Private, CarriedDecides, "NAT64, well-known prefix"),
	carrier("64:ff9b:1::/48", Private, CarriedNever, "NAT64, local-use prefix"),
	carrier("2002::/16", Private, CarriedNever, "6to4: tunnels to an IPv4 address"),
}

// Table returns every entry, IPv4 first, then IPv6, then the IPv6
// prefixes that carry IPv4 addresses.
func Table() []Range { return append([]Range(nil), table...) }

// Embed returns the IPv6 prefix under which prefix6 carries the IPv4 block
// v4, as RFC 6052 lays it out: the IPv4 bits follow the prefix, skipping
// bits 64-71 (the "u" octet, always zero).
func Embed(prefix6, v4 netip.Prefix) netip.Prefix {
	b := prefix6.Masked().Addr().As16()
	a := v4.Addr().As4()
	pos, bits := prefix6.Bits(), prefix6.Bits()
	for i := 0; i < v4.Bits(); i++ {
		if pos >= 64 && pos < 72 {
			pos = 72
		}
		if a[i/8]&(0x80>>(i%8)) != 0 {
			b[pos/8] |= 0x80 >> (pos % 8)
		}
		pos++
		bits = pos
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), bits)
}

// Extract is Embed's inverse for one address: the IPv4 address a carries
// under prefix6.
func Extract(prefix6 netip.Prefix, a netip.Addr) netip.Addr {
	b := a.As16()
	var v4 [4]byte
	pos := prefix6.Bits()
	for i := 0; i < 32; i++ {
		if pos >= 64 && pos < 72 {
			pos = 72
		}
		if pos < 128 && b[pos/8]&(0x80>>(pos%8)) != 0 {
			v4[i/8] |= 0x80 >> (i % 8)
		}
		pos++
	}
	return netip.AddrFrom4(v4)
}
