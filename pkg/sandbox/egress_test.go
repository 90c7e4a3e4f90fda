package sandbox

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// egressSandbox renders an egress sandbox with the given --allow-egress and
// --dns values (parsed as the flags are) and returns a function telling
// whether it may reach a destination.
func egressSandbox(t *testing.T, allow []string, dns []fence.Destination) func(other peer, port int32, proto corev1.Protocol) bool {
	t.Helper()
	s := NewSpec("demo", "agents")
	s.Network = NetworkEgress
	for _, a := range allow {
		d, err := fence.ParseEgress("--allow-egress", a)
		if err != nil {
			t.Fatal(err)
		}
		s.AllowEgress = append(s.AllowEgress, d)
	}
	s.DNS = dns
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	np := s.NetworkPolicy()
	pod := s.Pod().Labels
	return func(other peer, port int32, proto corev1.Protocol) bool {
		return allows(t, []*networkingv1.NetworkPolicy{np}, pod, egress, other, port, proto)
	}
}

func addr(ip string) peer { return peer{ip: ip} }

// Every blocked range, and every form of the metadata endpoint, stays out
// of reach of an egress sandbox on every port; public addresses do not.
func TestEgressBlocksPrivateAddressesInEveryForm(t *testing.T) {
	reach := egressSandbox(t, nil, nil)
	denied := []string{
		"0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.1.2.3",
		"169.254.0.1", "169.254.169.254", "169.254.20.10", "172.16.0.1", "172.31.255.255", "192.0.0.170",
		"192.168.0.1", "198.18.0.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
		"100.100.100.200", // Alibaba Cloud metadata
		"::", "::1", "::10.0.0.1", "::169.254.169.254", "fc00::1", "fd00::1", "fe80::1", "febf::1", "fec0::1", "ff02::1", "100::1",
		"::ffff:10.0.0.1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped: IPv4 on the wire
		"::ffff:0:a9fe:a9fe",            // IPv4-translated 169.254.169.254
		"64:ff9b::a9fe:a9fe",            // NAT64 169.254.169.254
		"64:ff9b::10.1.2.3",             // NAT64 to a private address
		"64:ff9b::8.8.8.8",              // NAT64 as a whole: only when named
		"64:ff9b:1:a9fe:a9:fe00::",      // local-use NAT64 (/48 layout) 169.254.169.254
		"64:ff9b:1::1",                  //
		"fd00:ec2::254", "fd20:ce::254", // AWS and GCP metadata over IPv6
		"2002:a9fe:a9fe::1", "2002:a00::1", // 6to4 through 169.254.169.254, 10.0.0.0
		"2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
	}
	for _, ip := range denied {
		for _, port := range []int32{80, 443, 53} {
			if reach(addr(ip), port, tcp) || reach(addr(ip), port, udp) {
				t.Errorf("an egress sandbox reaches %s port %d", ip, port)
			}
		}
	}
	for _, ip := range []string{"8.8.8.8", "::ffff:8.8.8.8", "1.1.1.1", "93.184.216.34", "100.128.0.1", "172.32.0.1", "2001:4860:4860::8888", "2606:4700::1111", "2a00:1450::1"} {
		if !reach(addr(ip), 443, tcp) || !reach(addr(ip), 53, udp) {
			t.Errorf("an egress sandbox does not reach the public address %s", ip)
		}
	}
	// The table itself: the first and last address of every blocked range.
	for _, b := range fence.BlockedRanges() {
		first := b.Prefix.Addr()
		last := lastAddr(b.Prefix)
		if reach(addr(first.String()), 443, tcp) || reach(addr(last.String()), 443, tcp) {
			t.Errorf("an egress sandbox reaches blocked range %s (%s)", b.Prefix, b.Why)
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// --allow-egress: only there (and DNS); blocked ranges stay blocked unless
// a destination lies inside them.
func TestAllowEgressBehaviour(t *testing.T) {
	type conn struct {
		to    string
		port  int32
		proto corev1.Protocol
		want  bool
	}
	cases := []struct {
		allow []string
		conns []conn
	}{
		{[]string{"203.0.113.0/24:443"}, []conn{
			{"203.0.113.7", 443, tcp, true},
			{"203.0.113.7", 443, udp, false}, // a port alone means TCP
			{"203.0.113.7", 80, tcp, false},
			{"8.8.8.8", 443, tcp, false}, // no public internet beside the list
			{"2001:4860:4860::8888", 443, tcp, false},
		}},
		{[]string{"198.51.100.7"}, []conn{ // one host, every port and protocol
			{"198.51.100.7", 22, tcp, true},
			{"198.51.100.7", 5353, udp, true},
			{"198.51.100.8", 22, tcp, false},
		}},
		{[]string{"0.0.0.0/0:443"}, []conn{ // the world on 443: still no private address
			{"8.8.8.8", 443, tcp, true},
			{"10.1.2.3", 443, tcp, false},
			{"169.254.169.254", 443, tcp, false},
			{"127.0.0.1", 443, tcp, false},
			{"8.8.8.8", 80, tcp, false},
		}},
		{[]string{"10.1.2.3/32:5432"}, []conn{ // a private address, named on purpose
			{"10.1.2.3", 5432, tcp, true},
			{"10.1.2.3", 5433, tcp, false},
			{"10.1.2.4", 5432, tcp, false},
		}},
		{[]string{"10.0.0.0/8"}, []conn{ // a whole blocked range, named on purpose
			{"10.200.0.1", 8080, tcp, true},
			{"172.16.0.1", 8080, tcp, false},
		}},
		{[]string{"169.254.0.0/16:53/udp"}, []conn{ // link-local, but not the metadata endpoint inside it
			{"169.254.20.10", 53, udp, true},
			{"169.254.169.254", 53, udp, false},
		}},
		{[]string{"169.254.169.254/32:80"}, []conn{ // the metadata endpoint only when named exactly
			{"169.254.169.254", 80, tcp, true},
		}},
		{[]string{"[64:ff9b::/96]:443"}, []conn{ // NAT64 to the public v4 internet, never to private v4
			{"64:ff9b::8.8.8.8", 443, tcp, true},
			{"64:ff9b::10.0.0.1", 443, tcp, false},
			{"64:ff9b::192.168.1.1", 443, tcp, false},
			{"64:ff9b::169.254.169.254", 443, tcp, false},
			{"64:ff9b::127.0.0.1", 443, tcp, false},
		}},
		{[]string{"::/0:443"}, []conn{
			{"2606:4700::1111", 443, tcp, true},
			{"::ffff:10.0.0.1", 443, tcp, false},
			{"fd00::1", 443, tcp, false},
			{"fe80::1", 443, tcp, false},
			{"::1", 443, tcp, false},
			{"64:ff9b::8.8.8.8", 443, tcp, false},
		}},
		{[]string{"fd00::/8"}, []conn{ // ULA named on purpose; cloud metadata inside stays out
			{"fd12::1", 443, tcp, true},
			{"fd00:ec2::254", 80, tcp, false},
			{"fc00::1", 443, tcp, false},
		}},
		{[]string{"198.51.100.0/24:8000-8100/tcp", "2001:db8::/32:443/udp"}, []conn{
			{"198.51.100.1", 8000, tcp, true},
			{"198.51.100.1", 8100, tcp, true},
			{"198.51.100.1", 8101, tcp, false},
			{"2001:db8::1", 443, udp, true},
			{"2001:db8::1", 443, tcp, false},
		}},
	}
	for _, tc := range cases {
		reach := egressSandbox(t, tc.allow, nil)
		for _, c := range tc.conns {
			if got := reach(addr(c.to), c.port, c.proto); got != c.want {
				t.Errorf("--allow-egress %v: %s:%d/%s allowed = %v, want %v", tc.allow, c.to, c.port, c.proto, got, c.want)
			}
		}
		// DNS stays allowed whatever the list.
		if !reach(kubeDNS, 53, udp) || !reach(kubeDNS, 53, tcp) {
			t.Errorf("--allow-egress %v: cluster DNS is not allowed", tc.allow)
		}
		// Pods it was not allowed, unless the list names their address on purpose.
		for _, other := range []peer{fakeDNS, neighbour} {
			named := false
			for _, a := range tc.allow {
				d, _ := fence.ParseEgress("--allow-egress", a)
				p := netip.MustParsePrefix(d.CIDR)
				onPurpose := false
				for _, b := range fence.BlockedRanges() {
					onPurpose = onPurpose || coversPrefix(b.Prefix, p)
				}
				named = named || (onPurpose && p.Contains(netip.MustParseAddr(other.ip)))
			}
			if named != (reach(other, 53, udp) && reach(other, 5432, tcp)) {
				t.Errorf("--allow-egress %v: %s reachable = %v, want %v", tc.allow, other.ip, !named, named)
			}
		}
	}
}

// The DNS the cluster really has is allowed, by its real port, and only DNS.
func TestDNSDestinationsBehaviour(t *testing.T) {
	openshiftDNS := peer{ip: "10.128.0.10", podLabels: map[string]string{"dns.operator.openshift.io/daemonset-dns": "default"},
		nsLabels: map[string]string{"kubernetes.io/metadata.name": "openshift-dns"}, ports: map[string]int32{"dns": 5353, "dns-tcp": 5353}}
	kubeDNSService := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"k8s-app": "kube-dns"}, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			Ports: []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: udp, TargetPort: intstr.FromInt32(53)}, {Name: "dns-tcp", Port: 53, Protocol: tcp, TargetPort: intstr.FromInt32(53)}}},
	}
	openshift := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "openshift-dns", Name: "dns-default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"dns.operator.openshift.io/daemonset-dns": "default"}, ClusterIP: "172.30.0.10",
			Ports: []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: udp, TargetPort: intstr.FromString("dns")}, {Name: "dns-tcp", Port: 53, Protocol: tcp, TargetPort: intstr.FromString("dns-tcp")}, {Name: "metrics", Port: 9154, Protocol: tcp, TargetPort: intstr.FromString("metrics")}}},
	}
	nodeLocal := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "node-local-dns"}, Spec: corev1.ServiceSpec{ClusterIP: "None"}}
	dnsFlag, err := fence.ParseDNSServer("192.0.2.53:5353")
	if err != nil {
		t.Fatal(err)
	}

	type conn struct {
		to    peer
		port  int32
		proto corev1.Protocol
		want  bool
	}
	cases := []struct {
		what    string
		objects []runtime.Object
		dns     []fence.Destination // non-nil: --dns
		conns   []conn
	}{
		{"kube-dns", []runtime.Object{kubeDNSService}, nil, []conn{
			{kubeDNS, 53, udp, true}, {kubeDNS, 53, tcp, true}, {kubeDNS, 8080, tcp, false},
			{fakeDNS, 53, udp, false}, {addr("169.254.20.10"), 53, udp, false},
		}},
		{"NodeLocal DNSCache", []runtime.Object{kubeDNSService, nodeLocal}, nil, []conn{
			{addr("169.254.20.10"), 53, udp, true}, {addr("169.254.20.10"), 53, tcp, true},
			{addr("10.96.0.10"), 53, udp, true}, // the kube-dns ClusterIP, answered on the node
			{addr("169.254.20.10"), 80, tcp, false}, {addr("169.254.169.254"), 53, udp, false},
			{addr("10.96.0.11"), 53, udp, false}, {kubeDNS, 53, udp, true},
		}},
		{"OpenShift", []runtime.Object{openshift}, nil, []conn{
			{openshiftDNS, 5353, udp, true}, {openshiftDNS, 5353, tcp, true},
			{openshiftDNS, 53, udp, false}, {openshiftDNS, 9154, tcp, false}, // metrics is no DNS
			{kubeDNS, 53, udp, false},
		}},
		{"nothing found", nil, nil, []conn{{kubeDNS, 53, udp, true}, {openshiftDNS, 5353, udp, false}}},
		{"--dns", []runtime.Object{kubeDNSService}, []fence.Destination{dnsFlag}, []conn{
			{addr("192.0.2.53"), 5353, udp, true}, {addr("192.0.2.53"), 5353, tcp, true},
			{addr("192.0.2.53"), 53, udp, false}, {kubeDNS, 53, udp, false},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.what, func(t *testing.T) {
			dns := tc.dns
			if dns == nil {
				found := fence.DetectDNS(context.Background(), fake.NewClientset(tc.objects...))
				t.Logf("found: %s", found.Found)
				dns = found.Servers
			}
			reach := egressSandbox(t, []string{"203.0.113.0/24"}, dns)
			for _, c := range tc.conns {
				if got := reach(c.to, c.port, c.proto); got != c.want {
					t.Errorf("%s:%d/%s allowed = %v, want %v", c.to.ip, c.port, c.proto, got, c.want)
				}
			}
		})
	}
}

func TestWideningPolicies(t *testing.T) {
	s := NewSpec("demo", "agents")
	pod := s.Pod()
	own := s.NetworkPolicy()
	own.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: "u1", Controller: ptrTo(true)}}
	np := func(name string, sel metav1.LabelSelector, types []networkingv1.PolicyType, egressRules, ingressRules int) networkingv1.NetworkPolicy {
		p := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "agents"}, Spec: networkingv1.NetworkPolicySpec{PodSelector: sel, PolicyTypes: types}}
		for range egressRules {
			p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{})
		}
		for range ingressRules {
			p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
		}
		return p
	}
	all := metav1.LabelSelector{}
	both := []networkingv1.PolicyType{ingressType, egress}
	policies := []networkingv1.NetworkPolicy{
		*own,
		np("allow-all-egress", all, []networkingv1.PolicyType{egress}, 1, 0),
		np("allow-ingress-implicit", all, nil, 0, 1), // no policyTypes: Ingress
		np("egress-implicit", metav1.LabelSelector{MatchLabels: map[string]string{LabelManagedBy: ManagedBy}}, nil, 1, 0),
		np("deny-all", all, both, 0, 0),
		np("other-app", metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, both, 1, 1),
		np("not-sandboxes", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelManagedBy, Operator: metav1.LabelSelectorOpDoesNotExist}}}, both, 1, 1),
	}
	got := map[string]string{}
	for _, w := range WideningPolicies(policies, pod.Labels) {
		got[w.Policy.Name] = map[bool]string{true: "egress", false: ""}[w.Egress] + map[bool]string{true: "+ingress", false: ""}[w.Ingress]
	}
	want := map[string]string{"allow-all-egress": "egress", "allow-ingress-implicit": "+ingress", "egress-implicit": "egress"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("widening policies = %v, want %v", got, want)
	}
}

func ptrTo[T any](v T) *T { return &v }

// An allow-list needs the egress network; destinations are validated.
func TestSpecValidateEgress(t *testing.T) {
	d, _ := fence.ParseEgress("--allow-egress", "203.0.113.0/24")
	s := NewSpec("demo", "agents")
	s.AllowEgress = []fence.Destination{d}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "allowEgress needs network egress") {
		t.Errorf("allow-list on a no-network sandbox: %v", err)
	}
	s.Network = NetworkEgress
	if err := s.Validate(); err != nil {
		t.Errorf("allow-list on an egress sandbox: %v", err)
	}
	s.DNS = []fence.Destination{{CIDR: "10.1.2.3/8"}}
	if err := s.Validate(); err == nil {
		t.Error("a non-canonical DNS destination was accepted")
	}
	s.DNS = nil
	s.AllowEgress = []fence.Destination{{CIDR: "10.0.0.0/8", Pods: map[string]string{"a": "b"}}}
	if err := s.Validate(); err == nil {
		t.Error("a destination with both a CIDR and pods was accepted")
	}
	s.AllowEgress = []fence.Destination{{CIDR: "10.0.0.0/8", Ports: []fence.Port{{Protocol: tcp, Port: intstr.FromString("http")}}}}
	if err := s.Validate(); err == nil {
		t.Error("a named port on an address block was accepted")
	}
}

// Every object carries who made it and with what; the allow-list is on it.
func TestProvenanceAnnotations(t *testing.T) {
	s := NewSpec("demo", "agents")
	s.Network = NetworkEgress
	d, _ := fence.ParseEgress("--allow-egress", "[2001:db8::1]:443")
	d2, _ := fence.ParseEgress("--allow-egress", "203.0.113.0/24")
	s.AllowEgress = []fence.Destination{d, d2}
	s.TTL = 90 * 60e9
	s.Agent = "claude"
	s.CreatedBy = "alice@example.com"
	s.SecretEnvNames = []string{"K"}
	for _, obj := range []metav1.Object{s.Pod(), s.NetworkPolicy(), s.Secret(map[string]string{"K": "v"})} {
		a := obj.GetAnnotations()
		if a[AnnotationVersion] == "" || a[AnnotationCreatedBy] != "alice@example.com" || a[AnnotationAgent] != "claude" ||
			a[AnnotationTTL] != "1h30m0s" || a[AnnotationAllowEgress] != "203.0.113.0/24,[2001:db8::1/128]:443/TCP" {
			t.Errorf("%s: annotations %v", obj.GetName(), a)
		}
	}
}

// FromCluster asks who is creating and, for egress only, where DNS is.
func TestFromCluster(t *testing.T) {
	cs := fake.NewClientset()
	var asked []string
	cs.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		asked = append(asked, a.GetVerb()+" "+a.GetResource().Resource)
		return false, nil, nil
	})
	s := NewSpec("demo", "agents")
	s.FromCluster(context.Background(), cs)
	if strings.Join(asked, ",") != "create selfsubjectreviews" || s.DNS != nil {
		t.Errorf("a no-network sandbox asked %v (DNS %v)", asked, s.DNS)
	}
	asked = nil
	s.Network = NetworkEgress
	s.FromCluster(context.Background(), cs)
	if len(asked) != 5 || !reflect.DeepEqual(s.DNS, fence.DefaultDNS()) { // 4 DNS Services + who am I
		t.Errorf("an egress sandbox asked %v, DNS %v", asked, s.DNS)
	}
}

// coversPrefix reports whether outer holds all of inner (same family).
func coversPrefix(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}
