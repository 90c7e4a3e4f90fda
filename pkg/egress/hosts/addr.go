package hosts

import (
	"net/netip"
)

// Class says whether the egress proxy may dial an address.
type Class int

const (
	// Public addresses may be dialled when a grant allows the target.
	Public Class = iota
	// Private addresses (the cluster's and the company's networks,
	// CGNAT, documentation ranges, ...) only where the namespace's admin
	// opened them (egress install --private-cidr).
	Private
	// Never: loopback, link-local (where cloud metadata lives), known
	// metadata endpoints, unspecified, multicast and broadcast. Nothing
	// opens these.
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

type rangeClass struct {
	prefix netip.Prefix
	class  Class
	what   string
}

func ranges(class Class, what string, cidrs ...string) []rangeClass {
	r := make([]rangeClass, len(cidrs))
	for i, c := range cidrs {
		r[i] = rangeClass{netip.MustParsePrefix(c), class, what}
	}
	return r
}

func concat(parts ...[]rangeClass) []rangeClass {
	var all []rangeClass
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// Special-purpose ranges (IANA registries, RFC 6890 and successors). Never
// is listed first: the first range that contains an address decides, so a
// metadata address inside a private range stays Never.
var (
	never4 = concat(
		ranges(Never, "cloud metadata", "100.100.100.200/32", "192.0.0.192/32"),
		ranges(Never, "unspecified (\"this network\")", "0.0.0.0/8"),
		ranges(Never, "loopback", "127.0.0.0/8"),
		ranges(Never, "link-local (cloud metadata lives here)", "169.254.0.0/16"),
		ranges(Never, "multicast", "224.0.0.0/4"),
		ranges(Never, "reserved or broadcast", "240.0.0.0/4"),
	)
	private4 = concat(
		ranges(Private, "private (RFC 1918)", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
		ranges(Private, "shared address space (CGNAT)", "100.64.0.0/10"),
		ranges(Private, "IETF protocol assignments", "192.0.0.0/24"),
		ranges(Private, "documentation", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"),
		ranges(Private, "6to4 relay anycast", "192.88.99.0/24"),
		ranges(Private, "benchmarking", "198.18.0.0/15"),
	)
	never6 = concat(
		ranges(Never, "cloud metadata", "fd00:ec2::254/128"),
		ranges(Never, "unspecified", "::/128"),
		ranges(Never, "loopback", "::1/128"),
		ranges(Never, "IPv4-compatible (deprecated)", "::/96"),
		ranges(Never, "link-local", "fe80::/10"),
		ranges(Never, "multicast", "ff00::/8"),
	)
	private6 = concat(
		ranges(Private, "unique local", "fc00::/7"),
		ranges(Private, "site-local (deprecated)", "fec0::/10"),
		ranges(Private, "documentation", "2001:db8::/32", "3fff::/20"),
		ranges(Private, "discard-only", "100::/64"),
		ranges(Private, "Teredo (hides an IPv4 address)", "2001::/32"),
		ranges(Private, "ORCHID", "2001:10::/28", "2001:20::/28"),
		ranges(Private, "local-use NAT64", "64:ff9b:1::/48"),
		ranges(Private, "6to4 (hides an IPv4 address)", "2002::/16"),
	)
)

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	siit    = netip.MustParsePrefix("::ffff:0:0:0/96") // IPv4-translated (RFC 2765)
	sixToFo = netip.MustParsePrefix("2002::/16")
)

// Classify says whether an address is public, private or never reachable,
// and why. IPv6 forms of IPv4 addresses (IPv4-mapped ::ffff:a.b.c.d, NAT64
// 64:ff9b::a.b.c.d, IPv4-translated, 6to4) are judged by the IPv4 address
// they carry, so 64:ff9b::a9fe:a9fe is the metadata endpoint it is.
func Classify(a netip.Addr) (Class, string) {
	a = a.WithZone("")
	if a.Is4In6() {
		return Classify(a.Unmap())
	}
	if a.Is4() {
		return lookupRange(a, never4, private4)
	}
	if !a.Is6() {
		return Never, "not an IP address"
	}
	if v4, ok := embedded4(a); ok {
		c, why := Classify(v4)
		switch {
		case c == Never:
			return Never, why + " (inside IPv6)"
		case sixToFo.Contains(a):
			return Private, "6to4 (hides an IPv4 address)"
		case c == Private:
			return Private, why + " (inside IPv6)"
		}
		return Public, "public (IPv4 inside IPv6)"
	}
	return lookupRange(a, never6, private6)
}

func lookupRange(a netip.Addr, lists ...[]rangeClass) (Class, string) {
	for _, l := range lists {
		for _, r := range l {
			if r.prefix.Contains(a) {
				return r.class, r.what
			}
		}
	}
	return Public, "public"
}

// embedded4 returns the IPv4 address that NAT64, IPv4-translated and 6to4
// addresses carry.
func embedded4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64.Contains(a), siit.Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFo.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// NonPublicPrefixes lists, per family, the ranges that are not Public, in
// the form a NetworkPolicy's ipBlock.except takes: the proxy's own policy
// excludes exactly what Classify refuses, including the NAT64 forms of the
// non-public IPv4 ranges.
func NonPublicPrefixes() (v4, v6 []netip.Prefix) {
	for _, r := range concat(never4, private4) {
		v4 = append(v4, r.prefix)
	}
	for _, r := range concat(never6, private6) {
		v6 = append(v6, r.prefix)
	}
	for _, p := range v4 {
		b := p.Addr().As4()
		in6 := nat64.Addr().As16()
		copy(in6[12:], b[:])
		v6 = append(v6, netip.PrefixFrom(netip.AddrFrom16(in6), 96+p.Bits()))
	}
	return v4, v6
}

// ClassifyBlock is Never for a block wholly inside a never-reachable
// range, Private for one that holds any private address, Public otherwise.
func ClassifyBlock(p netip.Prefix) (Class, string) {
	p = p.Masked()
	for _, rc := range concat(never4, never6) {
		if rc.prefix.Bits() <= p.Bits() && rc.prefix.Contains(p.Addr()) {
			return Never, rc.what
		}
	}
	for _, rc := range concat(never4, private4, never6, private6) {
		if rc.prefix.Overlaps(p) {
			return Private, "holds " + rc.what + " addresses"
		}
	}
	return Public, "public"
}

// Permitted reports whether the proxy may dial a: public addresses always,
// private ones only inside one of the opened prefixes, Never ones never.
func Permitted(a netip.Addr, opened []netip.Prefix) (bool, string) {
	c, why := Classify(a)
	switch c {
	case Public:
		return true, why
	case Private:
		u := a.Unmap()
		for _, p := range opened {
			if p.Contains(u) {
				return true, why + ", opened by --private-cidr " + p.String()
			}
		}
		return false, why
	}
	return false, why
}
