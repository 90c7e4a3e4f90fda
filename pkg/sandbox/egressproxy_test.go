package sandbox

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

func allowHostsSpec(t *testing.T, allow ...string) Spec {
	t.Helper()
	s := NewSpec("demo", "agents")
	var err error
	if s.AllowHosts, err = fence.CanonicalAllowHosts(allow); err != nil {
		t.Fatal(err)
	}
	s.EgressProxyURL = fence.ProxyURL("agents", "10.96.7.8")
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// A sandbox with --allow-host reaches its namespace's proxy on the proxy
// port and nothing else: not the internet, not DNS, not its neighbours.
func TestAllowHostsPolicyReachesOnlyTheProxy(t *testing.T) {
	s := allowHostsSpec(t, "api.anthropic.com")
	np := s.NetworkPolicy()
	pod := s.Pod().Labels
	proxy := peer{ip: "10.244.0.20", podLabels: ProxyLabels(), nsLabels: map[string]string{"kubernetes.io/metadata.name": "agents"}}
	fakeProxy := peer{ip: "10.244.0.21", podLabels: map[string]string{fence.LabelComponent: fence.ComponentEgressProxy}, nsLabels: proxy.nsLabels}
	for _, c := range []struct {
		what  string
		dir   networkingv1.PolicyType
		other peer
		port  int32
		proto corev1.Protocol
		want  bool
	}{
		{"the proxy on its port", egress, proxy, fence.ProxyPort, tcp, true},
		{"the proxy on another port", egress, proxy, 8080, tcp, false},
		{"the proxy over UDP", egress, proxy, fence.ProxyPort, udp, false},
		{"a pod with only the component label", egress, fakeProxy, fence.ProxyPort, tcp, false},
		{"public HTTPS", egress, public4, 443, tcp, false},
		{"public IPv6", egress, public6, 443, tcp, false},
		{"cluster DNS", egress, kubeDNS, 53, udp, false},
		{"a neighbour", egress, neighbour, 5432, tcp, false},
		{"cloud metadata", egress, peer{ip: "169.254.169.254"}, 80, tcp, false},
		{"ingress from the proxy", ingressType, proxy, 8080, tcp, false},
	} {
		if got := allows(t, []*networkingv1.NetworkPolicy{np}, pod, c.dir, c.other, c.port, c.proto); got != c.want {
			t.Errorf("%s: allowed = %v, want %v", c.what, got, c.want)
		}
	}
	// Without --allow-host the proxy is as unreachable as anything else.
	plain := NewSpec("demo", "agents")
	if allows(t, []*networkingv1.NetworkPolicy{plain.NetworkPolicy()}, plain.Pod().Labels, egress, proxy, fence.ProxyPort, tcp) {
		t.Error("a sandbox without --allow-host reaches the proxy")
	}
}

func TestAllowHostsPodEnvironmentAndGrants(t *testing.T) {
	s := allowHostsSpec(t, "API.anthropic.com", "*.npmjs.org", "api.anthropic.com:443")
	pod := s.Pod()
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	for _, n := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		if env[n] != "http://10.96.7.8:3128" {
			t.Errorf("%s = %q", n, env[n])
		}
	}
	if env["NO_PROXY"] != fence.NoProxy || env["no_proxy"] != fence.NoProxy || env["NODE_USE_ENV_PROXY"] != "1" {
		t.Errorf("NO_PROXY = %q, no_proxy = %q, NODE_USE_ENV_PROXY = %q", env["NO_PROXY"], env["no_proxy"], env["NODE_USE_ENV_PROXY"])
	}
	if got := pod.Annotations[fence.AnnotationAllowHosts]; got != `["api.anthropic.com:443","*.npmjs.org:443"]` {
		t.Errorf("grants annotation = %s", got)
	}
	rules, err := fence.AllowHostsOf(pod)
	if err != nil || len(rules) != 2 || rules[1].String() != "*.npmjs.org:443" {
		t.Fatalf("AllowHostsOf = %v, %v", rules, err)
	}
	if v := fakecluster.RestrictedViolations(t, pod); v != "" {
		t.Fatalf("violates restricted: %s", v)
	}
	// The user's own --env wins, as for every variable.
	s.Env = []corev1.EnvVar{{Name: "NO_PROXY", Value: "localhost,internal.example"}}
	for _, e := range s.Pod().Spec.Containers[0].Env {
		if e.Name == "NO_PROXY" && e.Value != "localhost,internal.example" {
			t.Errorf("--env NO_PROXY was overridden: %q", e.Value)
		}
	}
	// A sandbox without --allow-host has neither.
	plainSpec := NewSpec("demo", "agents")
	plain := plainSpec.Pod()
	if _, ok := plain.Annotations[fence.AnnotationAllowHosts]; ok {
		t.Error("a plain sandbox carries grants")
	}
	for _, e := range plain.Spec.Containers[0].Env {
		if strings.Contains(strings.ToLower(e.Name), "proxy") {
			t.Errorf("a plain sandbox has %s", e.Name)
		}
	}
}

func TestProxyURL(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"10.96.0.12", "http://10.96.0.12:3128"},
		{"fd00:10:96::c", "http://[fd00:10:96::c]:3128"},
		{"", "http://agentkernel-egress.agents.svc:3128"},
		{"None", "http://agentkernel-egress.agents.svc:3128"},
	} {
		if got := fence.ProxyURL("agents", tc.ip); got != tc.want {
			t.Errorf("ProxyURL(%q) = %s, want %s", tc.ip, got, tc.want)
		}
	}
}

func TestAllowHostsValidation(t *testing.T) {
	for _, tc := range []struct {
		what    string
		mutate  func(*Spec)
		wantErr string
	}{
		{"with --network egress", func(s *Spec) { s.Network = NetworkEgress }, "cannot be combined with network egress"},
		{"with --network open", func(s *Spec) { s.Network = NetworkOpen }, "cannot be combined with network open"},
		{"not canonical", func(s *Spec) { s.AllowHosts = []string{"API.example.com"} }, "canonical"},
		{"repeated", func(s *Spec) { s.AllowHosts = []string{"example.com:443", "example.com:443"} }, "canonical"},
		{"invalid", func(s *Spec) { s.AllowHosts = []string{"exa mple.com"} }, `--allow-host "exa mple.com"`},
		{"a bad proxy URL", func(s *Spec) { s.EgressProxyURL = "https://x:3128" }, "expected http://"},
	} {
		s := allowHostsSpec(t, "example.com")
		tc.mutate(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: Validate = %v, want %q", tc.what, err, tc.wantErr)
		}
	}
	many := make([]string, fence.MaxAllowHosts+1)
	for i := range many {
		many[i] = "example.com"
	}
	if _, err := fence.CanonicalAllowHosts(many); err == nil {
		t.Error("more than MaxAllowHosts accepted")
	}
}

// A pool claim sets the grants in the same write that claims the Pod.
func TestSetAllowHosts(t *testing.T) {
	s := allowHostsSpec(t, "example.com")
	pod := s.Pod()
	if err := SetAllowHosts(pod, []string{"B.example.com", "*.example.org:8443"}); err != nil {
		t.Fatal(err)
	}
	if got := pod.Annotations[fence.AnnotationAllowHosts]; got != `["b.example.com:443","*.example.org:8443"]` {
		t.Errorf("annotation = %s", got)
	}
	if err := SetAllowHosts(pod, nil); err != nil || pod.Annotations[fence.AnnotationAllowHosts] != "" {
		t.Errorf("revoking all: %v, %q", err, pod.Annotations[fence.AnnotationAllowHosts])
	}
	if err := SetAllowHosts(pod, []string{"exa mple.com"}); err == nil {
		t.Error("an invalid host was set")
	}
	plainSpec := NewSpec("demo", "agents")
	plain := plainSpec.Pod()
	if err := SetAllowHosts(plain, []string{"example.com"}); err == nil || !strings.Contains(err.Error(), "without allowHosts") {
		t.Errorf("grants set on a Pod with no route to the proxy: %v", err)
	}
}

func TestParseAllowHostsRefusesBadAnnotations(t *testing.T) {
	for _, raw := range []string{
		``, `not json`, `{"a":1}`, `[1]`, `["exa mple.com"]`, `["127.0.0.1"]`, `["*.com"]`,
		`[` + strings.Repeat(`"a.example.com",`, fence.MaxAllowHosts) + `"b.example.com"]`,
		strings.Repeat(" ", fence.MaxAllowHosts*(300)),
	} {
		if rules, err := fence.ParseAllowHosts(raw); err == nil {
			t.Errorf("ParseAllowHosts(%.40q) = %v, want an error", raw, rules)
		}
	}
	if rules, err := fence.ParseAllowHosts(`[]`); err != nil || len(rules) != 0 {
		t.Errorf("[] = %v, %v", rules, err)
	}
}

func FuzzParseAllowHosts(f *testing.F) {
	for _, s := range []string{`["api.anthropic.com:443"]`, `["*.example.com:8443","203.0.113.0/24:443"]`, `[]`, `[""]`, `["[::1]:1"]`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		rules, err := fence.ParseAllowHosts(raw)
		if err != nil {
			return
		}
		if len(rules) > fence.MaxAllowHosts {
			t.Fatalf("%d rules accepted", len(rules))
		}
		for _, r := range rules {
			if r.Port == 0 {
				t.Fatalf("rule %+v has no port", r)
			}
		}
	})
}
