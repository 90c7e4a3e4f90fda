package hosts

import (
	"net/netip"

	"github.com/agentkernel/kubectl-agentkernel/pkg/netaddr"
)

// Class says whether the egress proxy may dial an address. The classes and
// the ranges in them are the one table of pkg/netaddr, which the sandboxes'
// NetworkPolicy derives from too.
type Class = netaddr.Class

const (
	// Public addresses may be dialled when a grant allows the target.
	Public = netaddr.Public
	// Private addresses (the cluster's and the company's networks,
	// CGNAT, documentation ranges, ...) only where the namespace's admin
	// opened them (egress install --private-cidr).
	Private = netaddr.Private
	// Never: loopback, link-local (where cloud metadata lives), known
	// metadata and platform endpoints, unspecified, multicast and
	// broadcast. Nothing opens these.
	Never = netaddr.Never
)

// Classify says whether an address is public, private or never reachable,
// and why. IPv6 forms of IPv4 addresses (IPv4-mapped ::ffff:a.b.c.d, NAT64
// 64:ff9b::a.b.c.d, IPv4-translated, 6to4) are judged by the IPv4 address
// they carry, so 64:ff9b::a9fe:a9fe is the metadata endpoint it is.
func Classify(a netip.Addr) (Class, string) { return netaddr.Classify(a) }

// NonPublicPrefixes lists, per family, the ranges that are not Public, in
// the form a NetworkPolicy's ipBlock.except takes: the proxy's own policy
// excludes exactly what Classify refuses. A prefix that carries IPv4
// addresses is excluded whole unless the carried address decides
// (netaddr.CarriedDecides: NAT64, IPv4-translated); then the forms of the
// non-public IPv4 ranges inside it are.
func NonPublicPrefixes() (v4, v6 []netip.Prefix) {
	for _, b := range netaddr.Blocks() {
		switch {
		case b.Carrier.IsValid():
			if carrierDecides(b.Carrier) {
				v6 = append(v6, b.Prefix)
			}
		case b.Carries && b.Judged == netaddr.CarriedDecides:
		case b.Prefix.Addr().Is4():
			v4 = append(v4, b.Prefix)
		default:
			v6 = append(v6, b.Prefix)
		}
	}
	return v4, v6
}

func carrierDecides(p netip.Prefix) bool {
	for _, e := range netaddr.Table() {
		if e.Prefix == p {
			return e.Judged == netaddr.CarriedDecides
		}
	}
	return false
}

// NeverWithin lists the Never blocks inside p (p itself not among them):
// the except list of a range the admin opened (--private-cidr), so that
// the proxy's NetworkPolicy refuses what Permitted refuses there. Nil
// when there are none.
func NeverWithin(p netip.Prefix) []netip.Prefix {
	var in []netip.Prefix
	for _, b := range netaddr.Blocks() {
		if b.Class == Never && netaddr.Covers(p, b.Prefix) && b.Prefix != p.Masked() {
			in = append(in, b.Prefix)
		}
	}
	var out []netip.Prefix // outermost only
	for _, b := range in {
		nested := false
		for _, o := range in {
			nested = nested || (o != b && netaddr.Covers(o, b))
		}
		if !nested {
			out = append(out, b)
		}
	}
	return out
}

// ClassifyBlock is Never for a block wholly inside a never-reachable
// range, Private for one that holds any private address, Public otherwise.
func ClassifyBlock(p netip.Prefix) (Class, string) {
	p = p.Masked()
	blocks := netaddr.Blocks()
	for _, b := range blocks {
		if b.Class == Never && netaddr.Covers(b.Prefix, p) {
			return Never, b.Why
		}
	}
	for _, b := range blocks {
		if b.Prefix.Overlaps(p) {
			return Private, "holds " + b.Why + " addresses"
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
