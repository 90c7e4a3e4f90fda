package sandbox

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

func egressSpec(t *testing.T, allow ...string) Spec {
	t.Helper()
	s := NewSpec("demo", "agents")
	s.Network, s.ReadOnlyRoot = NetworkEgress, false
	for _, a := range allow {
		d, err := fence.ParseEgress("--allow-egress", a)
		if err != nil {
			t.Fatal(err)
		}
		s.AllowEgress = append(s.AllowEgress, d)
	}
	return s
}

func fieldNames(errs []FieldError) string {
	var f []string
	for _, e := range errs {
		f = append(f, e.Field)
	}
	return strings.Join(f, ",")
}

// One case per field: what is beyond the ceiling is refused by the field's
// name, what is equal or narrower is not.
func TestWithin(t *testing.T) {
	dns := func(s string) []fence.Destination {
		d, err := fence.ParseDNSServer(s)
		if err != nil {
			t.Fatal(err)
		}
		return []fence.Destination{d}
	}
	cases := []struct {
		what           string
		ceiling, asked func(*Spec)
		want           string // the fields refused
	}{
		{"equal", nil, nil, ""},
		{"10.0.0.0/8 is not the public internet", nil, func(s *Spec) { s.AllowEgress = egressSpec(t, "10.0.0.0/8").AllowEgress }, "allowEgress"},
		{"a private host is not the public internet", nil, func(s *Spec) { s.AllowEgress = egressSpec(t, "10.1.2.3:5432").AllowEgress }, "allowEgress"},
		{"the metadata endpoint is not the public internet", nil, func(s *Spec) { s.AllowEgress = egressSpec(t, "169.254.169.254").AllowEgress }, "allowEgress"},
		{"a public block is within the public internet", nil, func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.0/24:443", "[2606:4700::/32]:53/udp").AllowEgress }, ""},
		{"0.0.0.0/0:443 is within the public internet", nil, func(s *Spec) { s.AllowEgress = egressSpec(t, "0.0.0.0/0:443").AllowEgress }, ""},
		{"narrower ports", func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.0/24").AllowEgress }, func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.8:443").AllowEgress }, ""},
		{"another port", func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.0/24:443").AllowEgress }, func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.8:80").AllowEgress }, "allowEgress"},
		{"UDP where TCP", func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.0/24:443").AllowEgress }, func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.8:443/udp").AllowEgress }, "allowEgress"},
		{"split across two", func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.0/25", "8.8.8.128/25").AllowEgress }, func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.0/24").AllowEgress }, ""},
		{"ports split across two", func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.0/24:1-1000", "8.8.8.0/24:1001-2000").AllowEgress }, func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.8:900-1100").AllowEgress }, ""},
		{"wider block", func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.0/24").AllowEgress }, func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.0.0/16").AllowEgress }, "allowEgress"},
		{"the public internet is not a list", func(s *Spec) { s.AllowEgress = egressSpec(t, "8.8.8.0/24").AllowEgress }, nil, "allowEgress"},
		{"a private block named on purpose, in both", func(s *Spec) { s.AllowEgress = egressSpec(t, "10.0.0.0/8").AllowEgress }, func(s *Spec) { s.AllowEgress = egressSpec(t, "10.1.0.0/16:5432").AllowEgress }, ""},
		{"network", nil, func(s *Spec) { s.Network = NetworkOpen; s.AllowEgress = nil }, "network"},
		{"none is within egress", nil, func(s *Spec) { s.Network = NetworkNone }, ""},
		{"anything is within open", func(s *Spec) { s.Network = NetworkOpen }, func(s *Spec) { s.AllowEgress = egressSpec(t, "10.0.0.0/8").AllowEgress }, ""},
		{"dns", func(s *Spec) { s.DNS = dns("10.96.0.10") }, func(s *Spec) { s.DNS = dns("10.96.0.11") }, "dns"},
		{"dns port", func(s *Spec) { s.DNS = dns("10.96.0.10") }, func(s *Spec) { s.DNS = dns("10.96.0.10:5353") }, "dns"},
		{"dns to pods elsewhere", func(s *Spec) { s.DNS = fence.DefaultDNS() }, func(s *Spec) {
			s.DNS = []fence.Destination{{Namespace: "attacker", Pods: map[string]string{"k8s-app": "kube-dns"}, Ports: fence.DNSPorts(intstr.FromInt32(53))}}
		}, "dns"},
		{"dns to fewer pods", func(s *Spec) { s.DNS = fence.DefaultDNS() }, func(s *Spec) {
			s.DNS = []fence.Destination{{Namespace: "kube-system", Pods: map[string]string{"k8s-app": "kube-dns", "zone": "a"}, Ports: fence.DNSPorts(intstr.FromInt32(53))}}
		}, ""},
		{"dns the same", func(s *Spec) { s.DNS = dns("10.96.0.10") }, func(s *Spec) { s.DNS = dns("10.96.0.10") }, ""},
		{"allowHosts", func(s *Spec) { s.Network, s.AllowHosts = NetworkNone, []string{"example.com:443"} }, func(s *Spec) {
			s.Network, s.AllowHosts = NetworkNone, []string{"example.com:443", "evil.example:443"}
		}, "allowHosts"},
		{"readOnlyRoot", func(s *Spec) { s.ReadOnlyRoot = true }, nil, "readOnlyRoot"},
		{"cpu", nil, func(s *Spec) { s.CPU.Set(2) }, "cpu"},
		{"memory", nil, func(s *Spec) { s.Memory.Set(2 << 30) }, "memory"},
		{"ephemeralStorage", nil, func(s *Spec) { s.EphemeralStorage.Set(3 << 30) }, "ephemeralStorage"},
		{"smaller", nil, func(s *Spec) { s.CPU.SetMilli(500); s.Memory.Set(1 << 20) }, ""},
		{"runtimeClassName", func(s *Spec) { s.RuntimeClassName = "gvisor" }, func(s *Spec) { s.RuntimeClassName = "runc" }, "runtimeClassName"},
		{"runtimeClassName none", func(s *Spec) { s.RuntimeClassName = "gvisor" }, nil, "runtimeClassName"},
		{"runtimeClassName where the ceiling has none", nil, func(s *Spec) { s.RuntimeClassName = "kata" }, "runtimeClassName"},
		{"nodeSelector", func(s *Spec) { s.NodeSelector = map[string]string{"pool": "sandboxes"} }, func(s *Spec) { s.NodeSelector = map[string]string{"pool": "system"} }, "nodeSelector"},
		{"nodeSelector none", func(s *Spec) { s.NodeSelector = map[string]string{"pool": "sandboxes"} }, nil, "nodeSelector"},
		{"nodeSelector narrower", func(s *Spec) { s.NodeSelector = map[string]string{"pool": "sandboxes"} }, func(s *Spec) {
			s.NodeSelector = map[string]string{"pool": "sandboxes", "zone": "a"}
		}, ""},
		{"serviceAccountName", nil, func(s *Spec) { s.ServiceAccountName = "deployer" }, "serviceAccountName"},
		{"imagePullPolicy", func(s *Spec) { s.ImagePullPolicy = corev1.PullAlways }, func(s *Spec) { s.ImagePullPolicy = corev1.PullIfNotPresent }, "imagePullPolicy"},
		{"imagePullPolicy Always within anything", nil, func(s *Spec) { s.ImagePullPolicy = corev1.PullAlways }, ""},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			ceiling, asked := egressSpec(t), egressSpec(t)
			if c.ceiling != nil {
				c.ceiling(&ceiling)
			}
			if c.asked != nil {
				c.asked(&asked)
			}
			errs := Within(&ceiling, &asked)
			if got := fieldNames(errs); got != c.want {
				t.Errorf("Within = %v, want fields %q", errs, c.want)
			}
			for _, e := range errs {
				if e.Asked == "" || e.Ceiling == "" || !strings.Contains(e.Error(), e.Field) {
					t.Errorf("a field error that does not say what: %+v", e)
				}
			}
		})
	}
}

// randomDestinations draws CIDR destinations around a few interesting
// places (blocked ranges, their edges, public space) with random ports.
func randomDestinations(r *rand.Rand, n int) []fence.Destination {
	bases := []string{"10.0.0.0", "169.254.169.254", "8.8.8.0", "0.0.0.0", "100.64.0.0", "192.0.0.0", "fd00::", "2606:4700::", "::", "64:ff9b::", "168.63.129.16"}
	var out []fence.Destination
	for range n {
		a := netip.MustParseAddr(bases[r.IntN(len(bases))])
		bits := a.BitLen() - r.IntN(a.BitLen()+1)
		if r.IntN(3) == 0 {
			bits = r.IntN(a.BitLen() + 1)
		}
		p, _ := a.Prefix(bits)
		d := fence.Destination{CIDR: p.String()}
		switch r.IntN(3) {
		case 1:
			lo := int32(1 + r.IntN(100))
			d.Ports = []fence.Port{{Protocol: []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP}[r.IntN(2)], Port: intstr.FromInt32(lo)}}
			if r.IntN(2) == 0 {
				d.Ports[0].EndPort = lo + int32(r.IntN(50))
			}
		case 2:
			d.Ports = []fence.Port{{Protocol: corev1.ProtocolTCP, Port: intstr.FromInt32(int32(1 + r.IntN(100)))}, {Protocol: corev1.ProtocolUDP, Port: intstr.FromInt32(53)}}
		}
		out = append(out, d)
	}
	return out
}

// The oracle: the rendered policies themselves, asked about sampled
// addresses and ports. If Within says asked is within ceiling, no sample
// asked lets through may be refused by ceiling; if it says not, the
// witness it had in mind is not checked, but equal sets must be within.
func FuzzWithin(f *testing.F) {
	f.Add(uint64(1), uint8(2), uint8(2))
	f.Add(uint64(42), uint8(1), uint8(4))
	f.Fuzz(func(t *testing.T, seed uint64, na, nc uint8) {
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		asked, ceiling := egressSpec(t), egressSpec(t)
		asked.AllowEgress = randomDestinations(r, 1+int(na%4))
		ceiling.AllowEgress = randomDestinations(r, 1+int(nc%4))
		asked.DNS, ceiling.DNS = []fence.Destination{}, []fence.Destination{}
		if errs := Within(&ceiling, &ceiling); len(errs) > 0 {
			t.Fatalf("a spec is not within itself: %v", errs)
		}
		if len(Within(&ceiling, &asked)) > 0 {
			return
		}
		reachAsked := egressSandboxOf(t, &asked)
		reachCeiling := egressSandboxOf(t, &ceiling)
		for _, d := range asked.AllowEgress {
			p := netip.MustParsePrefix(d.CIDR)
			for _, a := range sampleIn(r, p) {
				for _, port := range []int32{1, 53, 80, 120, int32(1 + r.IntN(65535))} {
					for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
						if reachAsked(addr(a.String()), port, proto) && !reachCeiling(addr(a.String()), port, proto) {
							t.Fatalf("Within says %v is within %v, but it reaches %s:%d/%s and the ceiling does not", asked.AllowEgress, ceiling.AllowEgress, a, port, proto)
						}
					}
				}
			}
		}
	})
}

// sampleIn: the edges of p and of every blocked range inside it, and
// random addresses.
func sampleIn(r *rand.Rand, p netip.Prefix) []netip.Addr {
	out := []netip.Addr{p.Masked().Addr(), lastAddr(p)}
	for _, b := range fence.BlockedRanges() {
		if p.Overlaps(b.Prefix) {
			first, last := b.Prefix.Masked().Addr(), lastAddr(b.Prefix)
			for _, a := range []netip.Addr{first, last, first.Prev(), last.Next()} {
				if a.IsValid() && p.Contains(a) {
					out = append(out, a)
				}
			}
		}
	}
	for range 16 {
		b := p.Masked().Addr().AsSlice()
		for i := p.Bits(); i < len(b)*8; i++ {
			if r.IntN(2) == 0 {
				b[i/8] |= 0x80 >> (i % 8)
			}
		}
		a, _ := netip.AddrFromSlice(b)
		out = append(out, a)
	}
	return out
}

func egressSandboxOf(t *testing.T, s *Spec) func(peer, int32, corev1.Protocol) bool {
	np := s.NetworkPolicy()
	pod := s.Pod().Labels
	return func(other peer, port int32, proto corev1.Protocol) bool {
		return allows(t, []*networkingv1.NetworkPolicy{np}, pod, egress, other, port, proto)
	}
}
