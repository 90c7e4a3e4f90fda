package hosts

import (
	"net/netip"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/netaddr"
)

// The proxy's own NetworkPolicy excepts exactly what Classify refuses, at
// and around the edges of every block of the table (IPv4-mapped forms need
// no rule: they leave as IPv4); and inside an opened --private-cidr its
// except list (NeverWithin) keeps out exactly the Never addresses.
func TestProxyPolicyAgreesWithClassifyOnEveryBlock(t *testing.T) {
	v4, v6 := NonPublicPrefixes()
	n := 0
	for _, b := range netaddr.Blocks() {
		first := b.Prefix.Masked().Addr()
		for _, a := range []netip.Addr{first, first.Next(), first.Prev()} {
			if !a.IsValid() || a.Is4In6() {
				continue
			}
			n++
			c, why := Classify(a)
			list := v6
			if a.Is4() {
				list = v4
			}
			if inAny(a, list) != (c != Public) {
				t.Errorf("%s: excepted by the proxy's policy = %v, but Classify says %s (%s)", a, inAny(a, list), c, why)
			}
			for _, e := range netaddr.Table() {
				if !e.Prefix.Contains(a) || e.Class != Private {
					continue
				}
				if inAny(a, NeverWithin(e.Prefix)) != (c == Never) {
					t.Errorf("%s (%s, %s) with --private-cidr %s: excepted = %v", a, c, why, e.Prefix, inAny(a, NeverWithin(e.Prefix)))
				}
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d addresses checked", n)
	}
}

// inAny says whether a is in one of the prefixes of list.
func inAny(a netip.Addr, list []netip.Prefix) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
