package sandbox

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// Within says how a sandbox asked for is more open or bigger than a
// ceiling, field by field; none: it is within. It compares what each would
// allow, not the flags that made them: the addresses and ports their
// NetworkPolicies let through (a 10.0.0.0/8 destination is not within the
// public internet), the DNS they may query, the nodes they may land on.
//
// A ceiling whose DNS is nil (the cluster's, detected when the sandbox is
// made) does not limit the asked DNS: a caller that knows the cluster
// fills it in first (DetectDNS).
func Within(ceiling, asked *Spec) []FieldError {
	var errs []FieldError
	add := func(field, asked, ceiling string) {
		errs = append(errs, FieldError{Field: field, Asked: asked, Ceiling: ceiling})
	}
	if slices.Index(Networks, asked.Network) > slices.Index(Networks, ceiling.Network) {
		add("network", string(asked.Network), string(ceiling.Network))
	}
	if ceiling.Network != NetworkOpen {
		var extra []string
		for _, h := range asked.AllowHosts {
			if !slices.Contains(ceiling.AllowHosts, h) {
				extra = append(extra, h)
			}
		}
		if len(extra) > 0 {
			add("allowHosts", strings.Join(extra, ", "), showList(ceiling.AllowHosts))
		}
	}
	if asked.Network == NetworkEgress && ceiling.Network == NetworkEgress {
		allowed := ceiling.EgressDestinations()
		if ceiling.DNS == nil && asked.DNS != nil {
			allowed = append(allowed, asked.DNS...) // not ours to judge: see above
		}
		if out := beyond(asked.AllowEgressOrPublic(), allowed); len(out) > 0 {
			add("allowEgress", strings.Join(out, ", "), destinationsString(ceiling.AllowEgressOrPublic()))
		}
		if out := beyond(asked.DNS, allowed); len(out) > 0 {
			add("dns", strings.Join(out, ", "), destinationsString(ceiling.DNS))
		}
	}
	if ceiling.ReadOnlyRoot && !asked.ReadOnlyRoot {
		add("readOnlyRoot", "false", "true")
	}
	for _, q := range []struct {
		field       string
		asked, most resource.Quantity
	}{
		{"cpu", asked.CPU, ceiling.CPU},
		{"memory", asked.Memory, ceiling.Memory},
		{"ephemeralStorage", asked.EphemeralStorage, ceiling.EphemeralStorage},
	} {
		if q.asked.Cmp(q.most) > 0 {
			add(q.field, q.asked.String(), q.most.String())
		}
	}
	// Another runtime class is another isolation boundary (another
	// handler, another kernel or none of its own): only the ceiling's.
	if asked.RuntimeClassName != ceiling.RuntimeClassName {
		add("runtimeClassName", showString(asked.RuntimeClassName), showString(ceiling.RuntimeClassName))
	}
	// A node selector narrows where a sandbox may land: the asked one must
	// hold every label the ceiling's does, so it lands on no node the
	// ceiling's would not.
	for k, v := range ceiling.NodeSelector {
		if got, ok := asked.NodeSelector[k]; !ok || got != v {
			add("nodeSelector", showMap(asked.NodeSelector), showMap(ceiling.NodeSelector))
			break
		}
	}
	if asked.ServiceAccountName != "" && asked.ServiceAccountName != ceiling.ServiceAccountName {
		add("serviceAccountName", showString(asked.ServiceAccountName), showString(ceiling.ServiceAccountName))
	}
	// Always makes the kubelet ask the registry (and its credentials) each
	// time; any other policy may run an image someone else pulled.
	if ceiling.ImagePullPolicy == corev1.PullAlways && asked.ImagePullPolicy != corev1.PullAlways {
		add("imagePullPolicy", showString(string(asked.ImagePullPolicy)), string(corev1.PullAlways))
	}
	return errs
}

// AllowEgressOrPublic is what an egress sandbox may reach beside its DNS.
func (s *Spec) AllowEgressOrPublic() []fence.Destination {
	if len(s.AllowEgress) == 0 {
		return fence.PublicInternet()
	}
	return s.AllowEgress
}

func showString(s string) string {
	if s == "" {
		return "none"
	}
	return fmt.Sprintf("%q", s)
}

func showList(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func showMap(m map[string]string) string {
	if len(m) == 0 {
		return "none"
	}
	return labels.SelectorFromSet(m).String()
}

func destinationsString(ds []fence.Destination) string {
	if len(ds) == 0 {
		return "none"
	}
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ", ")
}

// beyond returns the asked destinations that are not wholly allowed by
// the allowed ones together.
func beyond(asked, allowed []fence.Destination) []string {
	var out []string
	for _, d := range asked {
		if !destinationWithin(d, allowed) {
			out = append(out, d.String())
		}
	}
	return out
}

// protocols a destination without ports allows.
var allProtocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

// portSet is what a destination's ports allow: per protocol, port ranges
// and (for pods) port names.
type portSet map[corev1.Protocol]*protoPorts

type protoPorts struct {
	ranges [][2]int32
	names  map[string]bool
}

func portsOf(ps []fence.Port) portSet {
	set := portSet{}
	if len(ps) == 0 {
		for _, p := range allProtocols {
			set[p] = &protoPorts{ranges: [][2]int32{{1, 65535}}}
		}
		return set
	}
	for _, p := range ps {
		pp := set[p.Protocol]
		if pp == nil {
			pp = &protoPorts{names: map[string]bool{}}
			set[p.Protocol] = pp
		}
		if p.Port.Type == intstr.String {
			if pp.names == nil {
				pp.names = map[string]bool{}
			}
			pp.names[p.Port.StrVal] = true
			continue
		}
		hi := p.EndPort
		if hi == 0 {
			hi = p.Port.IntVal
		}
		pp.ranges = append(pp.ranges, [2]int32{p.Port.IntVal, hi})
	}
	return set
}

func (s portSet) union(o portSet) {
	for proto, pp := range o {
		mine := s[proto]
		if mine == nil {
			mine = &protoPorts{names: map[string]bool{}}
			s[proto] = mine
		}
		mine.ranges = append(mine.ranges, pp.ranges...)
		for n := range pp.names {
			if mine.names == nil {
				mine.names = map[string]bool{}
			}
			mine.names[n] = true
		}
	}
}

// covers: every port of sub is in s. A name is covered by the same name,
// or by every port of its protocol (a name stands for some port).
func (s portSet) covers(sub portSet) bool {
	for proto, want := range sub {
		have := s[proto]
		if have == nil {
			return false
		}
		for _, r := range want.ranges {
			if !rangesCover(have.ranges, r) {
				return false
			}
		}
		for n := range want.names {
			if !have.names[n] && !rangesCover(have.ranges, [2]int32{1, 65535}) {
				return false
			}
		}
	}
	return true
}

func rangesCover(have [][2]int32, want [2]int32) bool {
	rs := slices.Clone(have)
	sort.Slice(rs, func(i, j int) bool { return rs[i][0] < rs[j][0] })
	next := want[0]
	for _, r := range rs {
		if r[0] > next {
			break
		}
		if r[1] >= next {
			next = r[1] + 1
		}
		if next > want[1] {
			return true
		}
	}
	return next > want[1]
}

// interval is a run of addresses, both ends included.
type interval struct{ lo, hi netip.Addr }

// allowedIntervals are the addresses a CIDR destination lets through as
// rendered: its block less its except list.
func allowedIntervals(p netip.Prefix) []interval {
	out := []interval{{p.Masked().Addr(), lastAddrOf(p)}}
	for _, e := range fence.ExceptWithin(p) {
		ex := netip.MustParsePrefix(e)
		lo, hi := ex.Masked().Addr(), lastAddrOf(ex)
		var next []interval
		for _, iv := range out {
			if hi.Less(iv.lo) || iv.hi.Less(lo) {
				next = append(next, iv)
				continue
			}
			if iv.lo.Less(lo) {
				next = append(next, interval{iv.lo, lo.Prev()})
			}
			if hi.Less(iv.hi) {
				next = append(next, interval{hi.Next(), iv.hi})
			}
		}
		out = next
	}
	return out
}

func lastAddrOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// destinationWithin: every address and port d allows, some of allowed
// allow too. Addresses are cut where any allowed interval starts or ends;
// on each piece the allowed destinations holding it are the same, and
// their ports together must cover d's.
func destinationWithin(d fence.Destination, allowed []fence.Destination) bool {
	want := portsOf(d.Ports)
	if d.CIDR == "" {
		have := portSet{}
		for _, a := range allowed {
			if a.CIDR == "" && a.Namespace == d.Namespace && labels.SelectorFromSet(a.Pods).Matches(labels.Set(d.Pods)) {
				have.union(portsOf(a.Ports))
			}
		}
		return have.covers(want)
	}
	p, err := netip.ParsePrefix(d.CIDR)
	if err != nil {
		return false
	}
	type piece struct {
		iv    interval
		ports portSet
	}
	var theirs []piece
	cuts := map[netip.Addr]bool{}
	for _, a := range allowed {
		ap, err := netip.ParsePrefix(a.CIDR)
		if a.CIDR == "" || err != nil || ap.Addr().Is4() != p.Addr().Is4() {
			continue
		}
		for _, iv := range allowedIntervals(ap) {
			theirs = append(theirs, piece{iv, portsOf(a.Ports)})
			cuts[iv.lo] = true
			if n := iv.hi.Next(); n.IsValid() {
				cuts[n] = true
			}
		}
	}
	for _, iv := range allowedIntervals(p) {
		starts := []netip.Addr{iv.lo}
		for c := range cuts {
			if iv.lo.Less(c) && !iv.hi.Less(c) {
				starts = append(starts, c)
			}
		}
		for _, at := range starts {
			have := portSet{}
			for _, t := range theirs {
				if !at.Less(t.iv.lo) && !t.iv.hi.Less(at) {
					have.union(t.ports)
				}
			}
			if !have.covers(want) {
				return false
			}
		}
	}
	return true
}

// FieldError says what is wrong with one field of a sandbox: see
// field.Error.
type FieldError = field.Error
