package fence

import (
	"net/netip"
	"reflect"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// BlockedRange is an address block that no fenced sandbox reaches unless a
// destination names it, or an address inside it, on purpose.
type BlockedRange struct {
	Prefix netip.Prefix
	Why    string
}

// Blocked address space, IPv4 then IPv6. Nested entries (the metadata
// addresses) matter: a destination that names the wider block on purpose
// (169.254.0.0/16, for NodeLocal DNSCache say) still does not reach them.
var blocked4 = []struct{ cidr, why string }{
	{"0.0.0.0/8", `"this network": 0.0.0.0 reaches the node itself`},
	{"10.0.0.0/8", "private (RFC 1918)"},
	{"100.64.0.0/10", "carrier-grade NAT (RFC 6598), used by some clusters for pods and services"},
	{"100.100.100.200/32", "cloud metadata (Alibaba Cloud)"},
	{"127.0.0.0/8", "loopback"},
	{"169.254.0.0/16", "link-local"},
	{"169.254.169.254/32", "cloud metadata (AWS, GCP, Azure, OpenStack, ...)"},
	{"172.16.0.0/12", "private (RFC 1918)"},
	{"192.0.0.0/24", "IETF protocol assignments (NAT64 discovery, DS-Lite)"},
	{"192.168.0.0/16", "private (RFC 1918)"},
	{"198.18.0.0/15", "benchmarking, used as internal address space"},
	{"224.0.0.0/4", "multicast"},
	{"240.0.0.0/4", "reserved, and the broadcast address"},
}

var blocked6 = []struct{ cidr, why string }{
	{"::/128", "unspecified: reaches the node itself"},
	{"::1/128", "loopback"},
	{"100::/64", "discard-only"},
	{"2001::/32", "Teredo: tunnels to an IPv4 address"},
	{"fc00::/7", "unique local addresses (private)"},
	{"fd00:ec2::254/128", "cloud metadata (AWS, IPv6)"},
	{"fd20:ce::254/128", "cloud metadata (GCP, IPv6)"},
	{"fe80::/10", "link-local"},
	{"fec0::/10", "site-local (deprecated, still routed by some stacks)"},
	{"ff00::/8", "multicast"},
}

// v4InV6 are IPv6 prefixes whose addresses carry an IPv4 address and reach
// it: each is blocked whole, and every blocked IPv4 range is blocked again
// in each of them, so naming the prefix on purpose (64:ff9b::/96 to reach
// the public IPv4 internet through NAT64) never reaches private IPv4
// addresses or the metadata endpoint through it.
//
// IPv4-mapped addresses (::ffff:0:0/96) are not here: they never appear in
// a packet. A socket that connects to ::ffff:169.254.169.254 sends IPv4 to
// 169.254.169.254, which the IPv4 blocks refuse; and the API server
// rejects them in a NetworkPolicy.
var v4InV6 = []struct{ cidr, why string }{
	{"::/96", "IPv4-compatible (deprecated), with the unspecified and loopback addresses"},
	{"::ffff:0:0:0/96", "IPv4-translated (SIIT)"},
	{"64:ff9b::/96", "NAT64, well-known prefix"},
	{"64:ff9b:1::/48", "NAT64, local-use prefix"},
	{"2002::/16", "6to4: tunnels to an IPv4 address"},
}

var blockedRanges = buildBlockedRanges()

// BlockedRanges lists every blocked block with the reason.
func BlockedRanges() []BlockedRange { return append([]BlockedRange(nil), blockedRanges...) }

func buildBlockedRanges() []BlockedRange {
	var out []BlockedRange
	add := func(cidr, why string) netip.Prefix {
		p := netip.MustParsePrefix(cidr)
		out = append(out, BlockedRange{p, why})
		return p
	}
	for _, b := range blocked4 {
		add(b.cidr, b.why)
	}
	for _, b := range blocked6 {
		add(b.cidr, b.why)
	}
	for _, e := range v4InV6 {
		outer := add(e.cidr, e.why)
		for _, b := range blocked4 {
			p := embedIPv4(outer, netip.MustParsePrefix(b.cidr))
			out = append(out, BlockedRange{p, b.why + ", " + e.why})
		}
	}
	return out
}

// embedIPv4 returns the IPv6 prefix under which prefix6 carries the IPv4
// block v4, as RFC 6052 lays it out: the IPv4 bits follow the prefix,
// skipping bits 64-71 (the "u" octet, always zero).
func embedIPv4(prefix6, v4 netip.Prefix) netip.Prefix {
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

// covers reports whether every address of inner is in outer.
func covers(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// exceptWithin returns the blocked ranges that lie inside p and that p does
// not itself lie inside, outermost only: the except list of p's ipBlock.
func exceptWithin(p netip.Prefix) []string {
	var in []netip.Prefix
	for _, b := range blockedRanges {
		if covers(p, b.Prefix) && !covers(b.Prefix, p) {
			in = append(in, b.Prefix)
		}
	}
	sort.Slice(in, func(i, j int) bool { return in[i].Bits() < in[j].Bits() })
	var outer []netip.Prefix
	for _, b := range in {
		nested := false
		for _, o := range outer {
			if covers(o, b) {
				nested = true
				break
			}
		}
		if !nested {
			outer = append(outer, b)
		}
	}
	sort.Slice(outer, func(i, j int) bool { return outer[i].Addr().Less(outer[j].Addr()) })
	s := make([]string, len(outer))
	for i, b := range outer {
		s[i] = b.String()
	}
	return s
}

// PublicInternet is where an egress sandbox may go when no --allow-egress
// narrows it: every address, less the blocked ranges.
func PublicInternet() []Destination {
	return []Destination{{CIDR: "0.0.0.0/0"}, {CIDR: "::/0"}}
}

// EgressRules renders destinations as NetworkPolicy egress rules, one rule
// per distinct set of ports, in the order the ports first appear.
func EgressRules(dests []Destination) []networkingv1.NetworkPolicyEgressRule {
	var rules []networkingv1.NetworkPolicyEgressRule
	var ports [][]Port
	for _, d := range dests {
		i := 0
		for i < len(ports) && !reflect.DeepEqual(ports[i], d.Ports) {
			i++
		}
		if i == len(ports) {
			ports = append(ports, d.Ports)
			rules = append(rules, networkingv1.NetworkPolicyEgressRule{Ports: policyPorts(d.Ports)})
		}
		rules[i].To = append(rules[i].To, d.peer())
	}
	return rules
}

func (d Destination) peer() networkingv1.NetworkPolicyPeer {
	if d.CIDR != "" {
		p := netip.MustParsePrefix(d.CIDR) // Validate made sure
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: d.CIDR, Except: exceptWithin(p)}}
	}
	peer := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: d.Pods}}
	if d.Namespace != "" {
		peer.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: d.Namespace}}
	}
	return peer
}

func policyPorts(ports []Port) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, p := range ports {
		np := networkingv1.NetworkPolicyPort{Protocol: ptr.To(p.Protocol), Port: ptr.To(p.Port)}
		if p.EndPort != 0 {
			np.EndPort = ptr.To(p.EndPort)
		}
		out = append(out, np)
	}
	return out
}
