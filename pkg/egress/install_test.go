package egress

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

func testConfig() *Config {
	return &Config{
		Namespace: ns, Image: "ghcr.io/agentkernel/kubectl-agentkernel-egress:v1.2.3",
		Private:   []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")},
		APIServer: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:443"), netip.MustParseAddrPort("172.18.0.2:6443")},
	}
}

func TestProxyPodPassesPodSecurityRestricted(t *testing.T) {
	objs := testConfig().Objects()
	tmpl := objs.Deployment.Spec.Template
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	if agg := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, &tmpl.ObjectMeta, &tmpl.Spec)); !agg.Allowed {
		t.Fatalf("the proxy's Pod violates restricted: %s: %s", agg.ForbiddenReason(), agg.ForbiddenDetail())
	}
	c := tmpl.Spec.Containers[0]
	if got := strings.Join(c.Args, " "); got != "egress-proxy --namespace=agents --listen=:3128 --private-cidr=10.20.0.0/16" {
		t.Errorf("args = %s", got)
	}
	if !labels.SelectorFromSet(objs.Deployment.Spec.Selector.MatchLabels).Matches(labels.Set(tmpl.Labels)) ||
		!labels.SelectorFromSet(objs.Service.Spec.Selector).Matches(labels.Set(tmpl.Labels)) {
		t.Error("the Deployment's or the Service's selector does not select the proxy's Pods")
	}
	if d := tmpl.Spec.DNSConfig; d == nil || len(d.Options) != 1 || d.Options[0].Name != "ndots" || *d.Options[0].Value != "1" {
		t.Errorf("dnsConfig = %+v, want ndots:1", d)
	}
	if _, ok := tmpl.Labels[sandbox.LabelSandbox]; ok {
		t.Error("the proxy's Pods carry the sandbox label")
	}
	if !c.Resources.Requests.Cpu().Equal(*c.Resources.Limits.Cpu()) || !c.Resources.Requests.Memory().Equal(*c.Resources.Limits.Memory()) {
		t.Error("requests are not limits")
	}
}

// The proxy's policy as behaviour. (A compact evaluator of the parts of
// the NetworkPolicy API the policy uses: pod selectors in its namespace,
// IP blocks with exceptions, ports.)
func TestProxyPolicyBehaviour(t *testing.T) {
	np := testConfig().Objects().NetworkPolicy
	proxyLabels := sandbox.ProxyLabels()
	if !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(labels.Set(proxyLabels)) {
		t.Fatal("the policy does not select the proxy")
	}
	sbx := sandbox.NewSpec("a", ns)
	sandboxLabels := sbx.Pod().Labels
	warm := map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelPool: "p"}
	for _, c := range []struct {
		what   string
		in     bool
		labels map[string]string // for a pod peer
		ip     string
		port   int32
		proto  corev1.Protocol
		want   bool
	}{
		{"a sandbox, to the proxy port", true, sandboxLabels, "", 3128, corev1.ProtocolTCP, true},
		{"a sandbox, to another port", true, sandboxLabels, "", 8080, corev1.ProtocolTCP, false},
		{"an unclaimed pool member", true, warm, "", 3128, corev1.ProtocolTCP, false},
		{"any other pod", true, map[string]string{"app": "web"}, "", 3128, corev1.ProtocolTCP, false},
		{"the internet", true, nil, "93.184.216.34", 3128, corev1.ProtocolTCP, false},

		{"out: public HTTPS", false, nil, "93.184.216.34", 443, corev1.ProtocolTCP, true},
		{"out: public, any port", false, nil, "93.184.216.34", 22, corev1.ProtocolTCP, true},
		{"out: public IPv6", false, nil, "2606:4700::1111", 443, corev1.ProtocolTCP, true},
		{"out: NAT64 of a public address", false, nil, "64:ff9b::808:808", 443, corev1.ProtocolTCP, true},
		{"out: DNS anywhere", false, nil, "10.96.0.10", 53, corev1.ProtocolUDP, true},
		{"out: the API server", false, nil, "10.0.0.1", 443, corev1.ProtocolTCP, true},
		{"out: the API server's endpoint", false, nil, "172.18.0.2", 6443, corev1.ProtocolTCP, true},
		{"out: the API server's address, another port", false, nil, "10.0.0.1", 80, corev1.ProtocolTCP, false},
		{"out: an opened private range", false, nil, "10.20.3.4", 8080, corev1.ProtocolTCP, true},
		{"out: another private address", false, nil, "10.21.0.1", 443, corev1.ProtocolTCP, false},
		{"out: metadata", false, nil, "169.254.169.254", 80, corev1.ProtocolTCP, false},
		{"out: NAT64 of metadata", false, nil, "64:ff9b::a9fe:a9fe", 80, corev1.ProtocolTCP, false},
		{"out: NAT64 of a private address", false, nil, "64:ff9b::a15:1", 443, corev1.ProtocolTCP, false},
		{"out: loopback", false, nil, "127.0.0.1", 443, corev1.ProtocolTCP, false},
		{"out: CGNAT", false, nil, "100.64.0.1", 443, corev1.ProtocolTCP, false},
		{"out: IPv6 ULA", false, nil, "fd00::1", 443, corev1.ProtocolTCP, false},
		{"out: a sandbox pod", false, sandboxLabels, "10.244.0.5", 8080, corev1.ProtocolTCP, false},
	} {
		if got := policyAllows(t, np, c.in, c.labels, c.ip, c.port, c.proto); got != c.want {
			t.Errorf("%s: allowed = %v, want %v", c.what, got, c.want)
		}
	}
	// Without the API server's address, its usual ports on private ranges.
	unknown := testConfig()
	unknown.APIServer = nil
	np = unknown.Objects().NetworkPolicy
	if !policyAllows(t, np, false, nil, "10.0.0.1", 443, corev1.ProtocolTCP) || !policyAllows(t, np, false, nil, "192.168.1.1", 6443, corev1.ProtocolTCP) {
		t.Error("with the API server unknown, its usual ports on private ranges are not allowed")
	}
	if policyAllows(t, np, false, nil, "10.0.0.1", 5432, corev1.ProtocolTCP) || policyAllows(t, np, false, nil, "169.254.169.254", 443, corev1.ProtocolTCP) {
		t.Error("with the API server unknown, more than its usual ports is allowed")
	}
}

func policyAllows(t *testing.T, np *networkingv1.NetworkPolicy, ingress bool, podLabels map[string]string, ip string, port int32, proto corev1.Protocol) bool {
	t.Helper()
	type rule struct {
		peers []networkingv1.NetworkPolicyPeer
		ports []networkingv1.NetworkPolicyPort
	}
	var rules []rule
	if ingress {
		for _, r := range np.Spec.Ingress {
			rules = append(rules, rule{r.From, r.Ports})
		}
	} else {
		for _, r := range np.Spec.Egress {
			rules = append(rules, rule{r.To, r.Ports})
		}
	}
	for _, r := range rules {
		if peerMatches(t, r.peers, podLabels, ip) && portMatches(r.ports, port, proto) {
			return true
		}
	}
	return false
}

func peerMatches(t *testing.T, peers []networkingv1.NetworkPolicyPeer, podLabels map[string]string, ip string) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		switch {
		case p.IPBlock != nil && ip != "":
			a := netip.MustParseAddr(ip)
			if !netip.MustParsePrefix(p.IPBlock.CIDR).Contains(a) {
				continue
			}
			excepted := false
			for _, e := range p.IPBlock.Except {
				excepted = excepted || netip.MustParsePrefix(e).Contains(a)
			}
			if !excepted {
				return true
			}
		case p.PodSelector != nil && p.NamespaceSelector == nil && podLabels != nil:
			sel, err := metav1.LabelSelectorAsSelector(p.PodSelector)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Matches(labels.Set(podLabels)) {
				return true
			}
		}
	}
	return false
}

func portMatches(ports []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if (p.Protocol == nil && proto == corev1.ProtocolTCP || p.Protocol != nil && *p.Protocol == proto) && (p.Port == nil || p.Port.IntVal == port) {
			return true
		}
	}
	return false
}

// recorder notes creates and deletes in order, gives created objects UIDs
// (as an API server does) and can fail a kind's create.
type recorder struct {
	mu      sync.Mutex
	actions []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.actions = append(r.actions, s)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.actions)
}

func recordingCluster(failCreate string, objects ...runtime.Object) (*fake.Clientset, *recorder) {
	cs := fakecluster.New(objects...)
	rec := &recorder{}
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		m, _ := meta.Accessor(a.(k8stesting.CreateAction).GetObject())
		if a.GetResource().Resource == failCreate {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: failCreate}, m.GetName(), errors.New("not allowed"))
		}
		rec.add("create " + a.GetResource().Resource)
		return false, nil, nil
	})
	cs.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rec.add("delete " + a.GetResource().Resource)
		return false, nil, nil
	})
	return cs, rec
}

func TestInstallCreatesThePolicyFirstAndIsIdempotent(t *testing.T) {
	cs, rec := recordingCluster("")
	in, err := Install(context.Background(), cs, testConfig(), InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"create networkpolicies", "create serviceaccounts", "create roles", "create rolebindings", "create services", "create deployments"}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	if in.Service == nil || len(in.Created) != 6 {
		t.Fatalf("installed %+v", in)
	}
	again, err := Install(context.Background(), cs, testConfig(), InstallOptions{})
	if err != nil || len(again.Created) != 0 || again.Service == nil {
		t.Fatalf("second install: %+v, %v", again, err)
	}
	if got := rec.list(); len(got) != len(want) {
		t.Fatalf("a second install changed something: %v", got)
	}
}

// A failed install removes what it made, newest first, and says what
// failed.
func TestFailedInstallLeavesNothing(t *testing.T) {
	cs, rec := recordingCluster("roles")
	_, err := Install(context.Background(), cs, testConfig(), InstallOptions{})
	if err == nil || !strings.Contains(err.Error(), `creating the egress proxy's role/agentkernel-egress in namespace "agents"`) || !apierrors.IsForbidden(err) {
		t.Fatalf("err = %v", err)
	}
	want := []string{"create networkpolicies", "create serviceaccounts", "delete serviceaccounts", "delete networkpolicies"}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	nps, _ := cs.NetworkingV1().NetworkPolicies(ns).List(context.Background(), metav1.ListOptions{})
	sas, _ := cs.CoreV1().ServiceAccounts(ns).List(context.Background(), metav1.ListOptions{})
	if len(nps.Items)+len(sas.Items) != 0 {
		t.Fatalf("left behind: %d policies, %d service accounts", len(nps.Items), len(sas.Items))
	}
}

// An object of the proxy's name that is not ours is never adopted or
// changed, and nothing this call made stays.
func TestInstallRefusesForeignObjects(t *testing.T) {
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fence.ProxyName, Namespace: ns, UID: "foreign"}}
	cs, rec := recordingCluster("", foreign)
	_, err := Install(context.Background(), cs, testConfig(), InstallOptions{Update: true})
	var notOurs *NotOursError
	if !errors.As(err, &notOurs) || !strings.Contains(err.Error(), `Service "agentkernel-egress" in namespace "agents" exists and was not made by kubectl agentkernel`) {
		t.Fatalf("err = %v", err)
	}
	for _, a := range rec.list() {
		if a == "delete services" {
			t.Fatal("the foreign Service was deleted")
		}
	}
	if n := len(rec.list()); n != 8 { // 4 created, 4 removed again
		t.Fatalf("actions: %v", rec.list())
	}
}

func TestEnsure(t *testing.T) {
	cs, rec := recordingCluster("")
	var warnings []string
	in, err := Ensure(context.Background(), cs, ns, EnsureOptions{Image: "img:1", Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil || in.Service == nil || in.Service.Name != fence.ProxyName || len(in.Created) != 6 {
		t.Fatalf("Ensure: %+v, %v", in, err)
	}
	// The fake cluster has no "kubernetes" Service: the policy assumes.
	if len(warnings) != 1 || !strings.Contains(warnings[0], "--api-server") {
		t.Fatalf("warnings: %q", warnings)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(context.Background(), fence.ProxyName, metav1.GetOptions{})
	if err != nil || dep.Spec.Template.Spec.Containers[0].Image != "img:1" {
		t.Fatalf("deployment: %v", err)
	}
	n := len(rec.list())
	if in, err := Ensure(context.Background(), cs, ns, EnsureOptions{Image: "img:2"}); err != nil || len(in.Created) != 0 || in.Service == nil {
		t.Fatalf("second Ensure: %+v, %v", in, err)
	}
	if len(rec.list()) != n {
		t.Fatalf("Ensure changed an existing proxy: %v", rec.list()[n:])
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(context.Background(), fence.ProxyName, metav1.GetOptions{})
	if dep.Spec.Template.Spec.Containers[0].Image != "img:1" {
		t.Fatal("Ensure replaced the image of an existing proxy")
	}
}

func TestDetectAPIServer(t *testing.T) {
	port := int32(6443)
	cs := fake.NewClientset(
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"}, Ports: []corev1.ServicePort{{Port: 443}}}},
		endpointSlice("kubernetes", []string{"172.18.0.2", "172.18.0.3"}, port),
	)
	got, err := DetectAPIServer(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, ap := range got {
		s = append(s, ap.String())
	}
	if strings.Join(s, ",") != "10.96.0.1:443,172.18.0.2:6443,172.18.0.3:6443" {
		t.Fatalf("DetectAPIServer = %v", s)
	}
	if _, err := DetectAPIServer(context.Background(), fake.NewClientset()); err == nil {
		t.Fatal("nothing to detect, no error")
	}
}

func TestParsePrivateCIDR(t *testing.T) {
	for in, want := range map[string]string{
		"10.20.0.0/16": "10.20.0.0/16", "10.244.0.7": "10.244.0.7/32", "fd00:10::/64": "fd00:10::/64",
		"::ffff:10.0.0.0/104": "10.0.0.0/8", "0.0.0.0/0": "0.0.0.0/0",
	} {
		p, err := ParsePrivateCIDR(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrivateCIDR(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for in, wantErr := range map[string]string{
		"10.20.0.1/16": "did you mean 10.20.0.0/16", "127.0.0.0/8": "loopback", "169.254.0.0/16": "link-local",
		"93.184.216.0/24": "public addresses only", "nonsense": "expected a CIDR", "fe80::/64": "link-local",
	} {
		if _, err := ParsePrivateCIDR(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParsePrivateCIDR(%q) = %v, want %q", in, err, wantErr)
		}
	}
}

func TestImageTag(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3": "v1.2.3", "v0.1.1-snapshot+abc1234": "v0.1.1-snapshot-abc1234",
		"v0.0.0-20261201152545-0123456789ab+dirty": "v0.0.0-20261201152545-0123456789ab-dirty", "dev": "dev", "": "dev",
		".x": "-x", strings.Repeat("a", 200): strings.Repeat("a", 128),
	} {
		if got := ImageTag(in); got != want {
			t.Errorf("ImageTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUninstall(t *testing.T) {
	ctx := context.Background()
	cs, rec := recordingCluster("")
	if _, err := Install(ctx, cs, testConfig(), InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	user := sandboxPod(t, "a", "10.244.0.5", "example.com")
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, user, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := Uninstall(ctx, cs, ns, false, 0)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "(a)") {
		t.Fatalf("uninstall with a sandbox using it: %v", err)
	}
	n := len(rec.list())
	removed, err := Uninstall(ctx, cs, ns, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"delete deployments", "delete services", "delete rolebindings", "delete roles", "delete serviceaccounts", "delete networkpolicies"}
	if got := rec.list()[n:]; !slices.Equal(got, want) {
		t.Fatalf("deletes %v, want %v", got, want)
	}
	if len(removed) != 6 {
		t.Fatalf("removed %v", removed)
	}
	st, err := GetStatus(ctx, cs, ns)
	if err != nil || st.Installed {
		t.Fatalf("status after uninstall: %+v, %v", st, err)
	}
}

func endpointSlice(service string, addrs []string, port int32) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: service, Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: addrs}},
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
	}
}

// A user who may not even read the proxy lacks the plugin's own Role: Ensure
// says so with the refusal itself (CannotReadError), and tries no install,
// which would only be refused for something else.
func TestEnsureCannotRead(t *testing.T) {
	for _, resource := range []string{"services", "deployments", "networkpolicies"} {
		t.Run(resource, func(t *testing.T) {
			cs, rec := recordingCluster("")
			if _, err := Ensure(context.Background(), cs, ns, EnsureOptions{Image: "img:1"}); err != nil {
				t.Fatal(err)
			}
			n := len(rec.list())
			cs.PrependReactor("get", resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: resource}, fence.ProxyName, errors.New("RBAC says no"))
			})
			_, err := Ensure(context.Background(), cs, ns, EnsureOptions{Image: "img:1"})
			var cannot *CannotReadError
			if !errors.As(err, &cannot) || !apierrors.IsForbidden(err) {
				t.Fatalf("Ensure: %v, want a CannotReadError that is a Forbidden", err)
			}
			if got := rec.list()[n:]; len(got) != 0 {
				t.Fatalf("Ensure wrote after a refused read: %v", got)
			}
		})
	}
}
