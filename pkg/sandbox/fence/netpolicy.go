package fence

import (
	"net/netip"
	"reflect"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/netaddr"
)

// BlockedRange is an address block that no fenced sandbox reaches unless a
// destination names it, or an address inside it, on purpose.
type BlockedRange struct {
	Prefix netip.Prefix
	Why    string
}

var blockedRanges = buildBlockedRanges()

// BlockedRanges lists every blocked block with the reason.
func BlockedRanges() []BlockedRange { return append([]BlockedRange(nil), blockedRanges...) }

// buildBlockedRanges derives the fence from the one table (pkg/netaddr):
// every entry that is not public, Never and Private alike (a destination
// that names one on purpose reaches it), and inside each IPv6 prefix that
// carries IPv4 addresses every IPv4 entry again. Nested entries (the
// metadata addresses) matter: a destination that names the wider block on
// purpose (169.254.0.0/16, for NodeLocal DNSCache say) still does not
// reach them.
func buildBlockedRanges() []BlockedRange {
	var out []BlockedRange
	for _, b := range netaddr.Blocks() {
		out = append(out, BlockedRange{b.Prefix, b.Why})
	}
	return out
}

// embedIPv4 returns the IPv6 prefix under which prefix6 carries the IPv4
// block v4 (netaddr.Embed).
func embedIPv4(prefix6, v4 netip.Prefix) netip.Prefix { return netaddr.Embed(prefix6, v4) }

// covers reports whether every address of inner is in outer.
func covers(outer, inner netip.Prefix) bool { return netaddr.Covers(outer, inner) }

// ExceptWithin returns the blocked ranges that lie inside p and that p does
// not itself lie inside, outermost only: the except list of p's ipBlock.
func ExceptWithin(p netip.Prefix) []string {
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
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: d.CIDR, Except: ExceptWithin(p)}}
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
