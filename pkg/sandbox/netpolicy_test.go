package sandbox

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// peer is one end of a connection as a NetworkPolicy sees it: an address,
// and for an in-cluster Pod its labels and its namespace's labels.
type peer struct {
	ip        string
	podLabels map[string]string // nil: not a Pod of this cluster
	nsLabels  map[string]string
}

// allows evaluates policies the way the NetworkPolicy API defines them, for
// traffic of dir ("Egress" from pod to other, "Ingress" from other to pod):
// isolated only if some policy of that type selects the pod, then allowed
// if any rule of those policies matches both the other end and the port.
func allows(t *testing.T, policies []*networkingv1.NetworkPolicy, pod map[string]string, dir networkingv1.PolicyType, other peer, port int32, proto corev1.Protocol) bool {
	t.Helper()
	isolated := false
	for _, np := range policies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Matches(labels.Set(pod)) || !hasType(np, dir) {
			continue
		}
		isolated = true
		if dir == networkingv1.PolicyTypeEgress {
			for _, r := range np.Spec.Egress {
				if peersMatch(t, r.To, other) && portsMatch(r.Ports, port, proto) {
					return true
				}
			}
		} else {
			for _, r := range np.Spec.Ingress {
				if peersMatch(t, r.From, other) && portsMatch(r.Ports, port, proto) {
					return true
				}
			}
		}
	}
	return !isolated
}

func hasType(np *networkingv1.NetworkPolicy, dir networkingv1.PolicyType) bool {
	for _, pt := range np.Spec.PolicyTypes {
		if pt == dir {
			return true
		}
	}
	return false
}

func peersMatch(t *testing.T, peers []networkingv1.NetworkPolicyPeer, other peer) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			if inBlock(t, p.IPBlock, other.ip) {
				return true
			}
			continue
		}
		if other.podLabels == nil {
			continue
		}
		if p.NamespaceSelector != nil && !selects(t, p.NamespaceSelector, other.nsLabels) {
			continue
		}
		if p.PodSelector != nil && !selects(t, p.PodSelector, other.podLabels) {
			continue
		}
		return true
	}
	return false
}

func selects(t *testing.T, s *metav1.LabelSelector, l map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel.Matches(labels.Set(l))
}

func inBlock(t *testing.T, b *networkingv1.IPBlock, ip string) bool {
	addr := netip.MustParseAddr(ip)
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		t.Fatalf("policy CIDR %q: %v", b.CIDR, err)
	}
	if !cidr.Contains(addr) {
		return false
	}
	for _, e := range b.Except {
		ex, err := netip.ParsePrefix(e)
		if err != nil {
			t.Fatalf("policy except %q: %v", e, err)
		}
		if ex.Contains(addr) {
			return false
		}
	}
	return true
}

func portsMatch(ports []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pr := corev1.ProtocolTCP
		if p.Protocol != nil {
			pr = *p.Protocol
		}
		if pr != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		lo, hi := p.Port.IntVal, p.Port.IntVal
		if p.EndPort != nil {
			hi = *p.EndPort
		}
		if port >= lo && port <= hi {
			return true
		}
	}
	return false
}

var (
	kubeDNS     = peer{ip: "10.96.0.10", podLabels: map[string]string{"k8s-app": "kube-dns"}, nsLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}}
	fakeDNS     = peer{ip: "10.244.0.9", podLabels: map[string]string{"k8s-app": "kube-dns"}, nsLabels: map[string]string{"kubernetes.io/metadata.name": "agents"}}
	neighbour   = peer{ip: "10.244.0.5", podLabels: map[string]string{"app": "db"}, nsLabels: map[string]string{"kubernetes.io/metadata.name": "agents"}}
	public4     = peer{ip: "8.8.8.8"}
	public6     = peer{ip: "2001:4860:4860::8888"}
	udp, tcp    = corev1.ProtocolUDP, corev1.ProtocolTCP
	egress      = networkingv1.PolicyTypeEgress
	ingressType = networkingv1.PolicyTypeIngress
)

// What each network mode's rendered policy lets through, as behaviour: the
// policy is evaluated against destinations, not searched for strings.
func TestNetworkPolicyBehaviour(t *testing.T) {
	type conn struct {
		what  string
		dir   networkingv1.PolicyType
		other peer
		port  int32
		proto corev1.Protocol
	}
	cases := []conn{
		{"public IPv4 HTTPS", egress, public4, 443, tcp},
		{"public IPv4 DNS", egress, public4, 53, udp},
		{"public IPv6 HTTPS", egress, public6, 443, tcp},
		{"cluster DNS over UDP", egress, kubeDNS, 53, udp},
		{"cluster DNS over TCP", egress, kubeDNS, 53, tcp},
		{"cluster DNS on another port", egress, kubeDNS, 8080, tcp},
		{"a kube-dns look-alike in another namespace", egress, fakeDNS, 53, udp},
		{"a neighbour pod", egress, neighbour, 5432, tcp},
		{"10/8", egress, peer{ip: "10.1.2.3"}, 443, tcp},
		{"172.16/12", egress, peer{ip: "172.31.0.1"}, 443, tcp},
		{"192.168/16", egress, peer{ip: "192.168.1.1"}, 443, tcp},
		{"CGNAT 100.64/10", egress, peer{ip: "100.64.0.1"}, 443, tcp},
		{"cloud metadata", egress, peer{ip: "169.254.169.254"}, 80, tcp},
		{"loopback", egress, peer{ip: "127.0.0.1"}, 80, tcp},
		{"IPv6 ULA", egress, peer{ip: "fd00::1"}, 443, tcp},
		{"IPv6 link-local", egress, peer{ip: "fe80::1"}, 443, tcp},
		{"IPv6 loopback", egress, peer{ip: "::1"}, 443, tcp},
		{"ingress from a neighbour", ingressType, neighbour, 8080, tcp},
		{"ingress from the internet", ingressType, public4, 8080, tcp},
	}
	allowed := map[Network]map[string]bool{
		NetworkNone: {},
		NetworkEgress: {"public IPv4 HTTPS": true, "public IPv4 DNS": true, "public IPv6 HTTPS": true,
			"cluster DNS over UDP": true, "cluster DNS over TCP": true},
	}
	for network, want := range allowed {
		s := NewSpec("demo", "agents")
		s.Network = network
		np := s.NetworkPolicy()
		pod := s.Pod().Labels
		for _, c := range cases {
			if got := allows(t, []*networkingv1.NetworkPolicy{np}, pod, c.dir, c.other, c.port, c.proto); got != want[c.what] {
				t.Errorf("network %s, %s (%s %s:%d/%s): allowed = %v, want %v", network, c.what, c.dir, c.other.ip, c.port, c.proto, got, want[c.what])
			}
		}
	}
	// Open: no policy of ours, the namespace's own networking.
	open := NewSpec("demo", "agents")
	open.Network = NetworkOpen
	if open.NetworkPolicy() != nil {
		t.Fatal("open network must have no policy")
	}
	// The policy fences its own sandbox only.
	s := NewSpec("demo", "agents")
	other := NewSpec("other", "agents")
	if allows(t, []*networkingv1.NetworkPolicy{s.NetworkPolicy()}, other.Pod().Labels, egress, public4, 443, tcp) != true {
		t.Fatal("a sandbox's policy selects another sandbox")
	}
}
