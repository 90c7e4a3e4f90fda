package sandbox

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
	"github.com/agentkernel/kubectl-agentkernel/pkg/netaddr"
)

// Cloud metadata and platform endpoints: no egress sandbox reaches them,
// not by default and not through a wider range named on purpose; the
// egress proxy never dials them, whatever the admin opened.
func TestPlatformAddressesAreNeverReachable(t *testing.T) {
	everything := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	for _, c := range []struct{ addr, wider string }{
		{"168.63.129.16", "168.63.0.0/16"},     // Azure WireServer, in public space
		{"169.254.169.254", "169.254.0.0/16"},  // AWS, GCP, Azure, Oracle, ...
		{"169.254.170.2", "169.254.0.0/16"},    // AWS ECS task credentials
		{"169.254.170.23", "169.254.0.0/16"},   // AWS EKS Pod Identity
		{"169.254.0.23", "169.254.0.0/16"},     // Tencent Cloud
		{"169.254.42.42", "169.254.0.0/16"},    // Scaleway
		{"100.100.100.200", "100.64.0.0/10"},   // Alibaba Cloud, inside CGNAT
		{"192.0.0.192", "192.0.0.0/24"},        // Oracle Cloud, inside IETF assignments
		{"fd20:ce::254", "fd00::/8"},           // GCP, IPv6
		{"fd00:ec2::254", "fd00::/8"},          // AWS, IPv6
		{"fd00:ec2::23", "fd00::/8"},           // AWS EKS Pod Identity, IPv6
		{"fd00:c1::a9fe:a9fe", "fd00::/8"},     // Oracle Cloud, IPv6
		{"fd00:a9fe:a9fe::1", "fd00::/8"},      // Akamai/Linode, IPv6
		{"fd00:42::42", "fd00::/8"},            // Scaleway, IPv6
		{"64:ff9b::a83f:8110", "64:ff9b::/96"}, // Azure WireServer through NAT64
	} {
		a := netip.MustParseAddr(c.addr)
		if reach := egressSandbox(t, nil, nil); reach(addr(c.addr), 80, tcp) {
			t.Errorf("an egress sandbox reaches %s", c.addr)
		}
		if reach := egressSandbox(t, []string{c.wider}, nil); reach(addr(c.addr), 80, tcp) {
			t.Errorf("an egress sandbox with --allow-egress %s reaches %s", c.wider, c.addr)
		}
		opened := append([]netip.Prefix{netip.MustParsePrefix(c.wider)}, everything...)
		if ok, why := hosts.Permitted(a, opened); ok {
			t.Errorf("the egress proxy with --private-cidr %s dials %s (%s)", c.wider, c.addr, why)
		}
		if got, _ := hosts.Classify(a); got != hosts.Never {
			t.Errorf("the egress proxy classes %s as %s", c.addr, got)
		}
	}
}

// samples are addresses at and around the edges of every block of the
// table, and the IPv6 forms of each IPv4 one that the proxy recognizes.
func samples() []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		if !a.IsValid() {
			return
		}
		out = append(out, a)
		if a.Is4() {
			v4 := netip.PrefixFrom(a, 32)
			out = append(out, netip.AddrFrom16(a.As16())) // IPv4-mapped
			for _, c := range netaddr.Table() {
				if c.Carries {
					out = append(out, netaddr.Embed(c.Prefix, v4).Addr())
				}
			}
		}
	}
	for _, b := range netaddr.Blocks() {
		first, last := b.Prefix.Masked().Addr(), lastAddr(b.Prefix)
		add(first)
		add(last)
		add(first.Next())
		add(last.Prev())
		add(first.Prev())
		add(last.Next())
	}
	for _, s := range []string{"8.8.8.8", "93.184.216.34", "2606:4700::1111", "2a00:1450::1"} {
		add(netip.MustParseAddr(s))
	}
	return out
}

func inCarrier(a netip.Addr) bool {
	for _, c := range netaddr.Table() {
		if c.Carries && c.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

// The fence (the rendered NetworkPolicy of an egress sandbox) and the
// egress proxy (Classify, Permitted) derive from one table and agree on
// every entry, at its edges and just outside, and on the IPv6 forms of
// every IPv4 address:
//   - by default the fence lets through exactly what the proxy calls
//     public, except that it blocks the IPv6 prefixes carrying IPv4
//     whole (the proxy judges those by the carried address);
//   - a Never address is refused by the proxy whatever is opened, and by
//     the fence even when a wider entry holding it is named on purpose;
//   - a Private address is refused by both until its entry is opened
//     (named by a destination, --private-cidr), and then let through by
//     both, unless a narrower entry inside holds it.
func TestFenceAndProxyAgree(t *testing.T) {
	def := egressSandbox(t, nil, nil)
	table := netaddr.Table()
	fences := map[netip.Prefix]func(peer, int32, corev1.Protocol) bool{}
	fenceNaming := func(p netip.Prefix) func(peer, int32, corev1.Protocol) bool {
		if f, ok := fences[p]; ok {
			return f
		}
		f := egressSandbox(t, []string{p.String()}, nil)
		fences[p] = f
		return f
	}
	for _, a := range samples() {
		c, why := hosts.Classify(a)
		fence := def(addr(a.String()), 443, tcp)
		switch {
		case fence && c != hosts.Public:
			t.Errorf("%s: the fence lets it through, the proxy says %s (%s)", a, c, why)
		case !fence && c == hosts.Public && !inCarrier(a):
			t.Errorf("%s: the fence blocks it, the proxy says public", a)
		}
		u := a.Unmap()
		for _, e := range table {
			if !e.Prefix.Contains(u) {
				continue
			}
			// A narrower entry inside e holding a keeps a out when e is opened.
			nested := false
			for _, b := range netaddr.Blocks() {
				nested = nested || (b.Prefix.Contains(u) && netaddr.Covers(e.Prefix, b.Prefix) && b.Prefix.Bits() > e.Prefix.Bits())
			}
			fenceOpen := fenceNaming(e.Prefix)(addr(a.String()), 443, tcp)
			proxyOpen, pwhy := hosts.Permitted(a, []netip.Prefix{e.Prefix})
			switch c {
			case hosts.Never:
				if proxyOpen {
					t.Errorf("%s is never reachable (%s), but the proxy with %s opened dials it (%s)", a, why, e.Prefix, pwhy)
				}
				if fenceOpen && nested {
					t.Errorf("%s is never reachable (%s), but a fence naming %s lets it through", a, why, e.Prefix)
				}
			case hosts.Private:
				if !nested && e.Class == hosts.Private && !e.Carries && (!fenceOpen || !proxyOpen) {
					t.Errorf("%s (%s) with %s opened: the fence lets it through = %v, the proxy = %v (%s)", a, why, e.Prefix, fenceOpen, proxyOpen, pwhy)
				}
				if fenceOpen && !proxyOpen && !e.Carries {
					t.Errorf("%s (%s): a fence naming %s lets it through, the proxy with it opened does not (%s)", a, why, e.Prefix, pwhy)
				}
			}
		}
	}
}
