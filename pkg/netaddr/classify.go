package netaddr

import "net/netip"

// Classify says how reachable an address is, and why, as the egress proxy
// judges it. The most closed entry that holds the address decides, so a
// metadata address inside a private range stays Never. IPv4-mapped
// addresses are judged as the IPv4 address they are; inside a prefix that
// carries IPv4 (Range.Carries), Range.Judged says how far the carried
// address decides: 64:ff9b::a9fe:a9fe is the metadata endpoint it carries.
func Classify(a netip.Addr) (Class, string) {
	if !a.IsValid() {
		return Never, "not an IP address"
	}
	a = a.WithZone("")
	if a.Is4In6() {
		return Classify(a.Unmap())
	}
	c, why := lookup(a)
	if !a.Is6() {
		return c, why
	}
	for _, e := range table {
		if !e.Carries || !e.Prefix.Contains(a) {
			continue
		}
		switch e.Judged {
		case CarriedDecides, CarriedNever:
			v4c, v4why := Classify(Extract(e.Prefix, a))
			switch {
			case v4c == Never:
				return Never, v4why + " (inside IPv6: " + e.Why + ")"
			case e.Judged == CarriedDecides && v4c > c:
				c, why = v4c, v4why+" (inside IPv6: "+e.Why+")"
			case e.Judged == CarriedDecides && c == Public:
				why = "public (IPv4 inside IPv6: " + e.Why + ")"
			case e.Class > c:
				c, why = e.Class, e.Why
			}
		default:
			if e.Class > c {
				c, why = e.Class, e.Why
			}
		}
	}
	return c, why
}

// lookup is the class of an address by the entries that do not carry
// IPv4: the most closed that holds it, and of those the narrowest (its
// reason is the most precise).
func lookup(a netip.Addr) (Class, string) {
	best := -1
	for i, e := range table {
		if e.Carries || !e.Prefix.Contains(a) {
			continue
		}
		if best < 0 || e.Class > table[best].Class || (e.Class == table[best].Class && e.Prefix.Bits() > table[best].Prefix.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return Public, "public"
	}
	return table[best].Class, table[best].Why
}

// Covers reports whether every address of inner is in outer.
func Covers(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// Blocks lists every block that is not Public, in the form a NetworkPolicy
// ipBlock.except takes, with its class and reason: each entry, and inside
// each prefix that carries IPv4 addresses, each IPv4 entry again (its
// Carried field names the carrier). A fence blocks all of them.
func Blocks() []Block {
	var out []Block
	for _, e := range table {
		out = append(out, Block{Range: e})
	}
	for _, c := range table {
		if !c.Carries {
			continue
		}
		for _, e := range table {
			if !e.Prefix.Addr().Is4() {
				continue
			}
			in := e
			in.Prefix = Embed(c.Prefix, e.Prefix)
			in.Why = e.Why + ", " + c.Why
			out = append(out, Block{Range: in, Carrier: c.Prefix})
		}
	}
	return out
}

// Block is one entry of Blocks.
type Block struct {
	Range
	// Carrier is the prefix an embedded IPv4 entry lies in; invalid for
	// the table's own entries.
	Carrier netip.Prefix
}
