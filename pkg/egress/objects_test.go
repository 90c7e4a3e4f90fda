package egress

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

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
		// Its agent's install goes through the proxy while it warms up
		// (found on the real node: every warm install timed out).
		{"an unclaimed pool member", true, warm, "", 3128, corev1.ProtocolTCP, true},
		{"an unclaimed pool member, to another port", true, warm, "", 8080, corev1.ProtocolTCP, false},
		{"a pod with the pool label, not ours", true, map[string]string{sandbox.LabelPool: "p"}, "", 3128, corev1.ProtocolTCP, false},
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
