package e2e

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

// The API server validates ipBlocks strictly (canonical CIDRs, except
// entries strictly inside, no IPv4-mapped addresses): every shape of fence
// the plugin renders must pass it.
func TestEgressPoliciesPassAPIValidation(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	cases := map[string][]string{
		"public internet":   {"--profile", "moderate"},
		"the world on 443":  {"--allow-egress", "0.0.0.0/0:443", "--allow-egress", "::/0:443"},
		"nat64 on purpose":  {"--allow-egress", "[64:ff9b::/96]:443", "--allow-egress", "[64:ff9b:1::/48]:443"},
		"link-local":        {"--allow-egress", "169.254.0.0/16:53/udp", "--allow-egress", "100.64.0.0/10"},
		"ula and ranges":    {"--allow-egress", "fd00::/8:8000-8100", "--allow-egress", "2002::/16", "--allow-egress", "::/96"},
		"one private host":  {"--allow-egress", "10.1.2.3:5432", "--allow-egress", "[fd00:ec2::254]:80"},
		"dns given":         {"--allow-egress", "203.0.113.0/24", "--dns", "169.254.20.10", "--dns", "[fd00::a]:5353"},
		"v4 halves":         {"--allow-egress", "0.0.0.0/1", "--allow-egress", "128.0.0.0/1"},
		"v6 global unicast": {"--allow-egress", "2000::/3:443/tcp"},
	}
	for name, flags := range cases {
		t.Run(name, func(t *testing.T) {
			r := plugin(t, "", append([]string{"create", "eg", "-n", ns, "--dry-run=server"}, flags...)...)
			if r.code != 0 {
				t.Fatalf("the API server refused the fence for %v:\n%s", flags, r)
			}
		})
	}
	wantError(t, plugin(t, "", "create", "eg", "-n", ns, "--allow-egress", "::ffff:10.0.0.1"), "give 10.0.0.1")
	assertNothingLeft(t, ns)
}

// Who did what: every object a create makes carries the plugin's version,
// the user the API server knows, the TTL and the allow-list; list -o wide
// shows them.
func TestProvenanceOnEveryObject(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	t.Setenv("E2E_PROVENANCE_KEY", "v")
	createSandbox(t, ns, "who", "--allow-egress", "203.0.113.0/24:443", "--ttl", "2h", "--secret-env", "E2E_PROVENANCE_KEY")
	ctx := context.Background()
	pod, err := env.cs.CoreV1().Pods(ns).Get(ctx, sandbox.PodName("who"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	np, err := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, sandbox.PodName("who"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := env.cs.CoreV1().Secrets(ns).Get(ctx, sandbox.SecretName("who"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	me := "e2e-admin" // the local cluster's admin certificate
	if env.cluster == nil {
		me = sandbox.WhoAmI(ctx, env.cs)
	}
	for _, obj := range []metav1.Object{pod, np, secret} {
		a := obj.GetAnnotations()
		if a[sandbox.AnnotationVersion] != version.Get().Version {
			t.Errorf("%s: no version annotation: %v", obj.GetName(), a)
		}
		if a[sandbox.AnnotationCreatedBy] != me || a[sandbox.AnnotationTTL] != "2h0m0s" || a[sandbox.AnnotationAllowEgress] != "203.0.113.0/24:443/TCP" {
			t.Errorf("%s: annotations %v", obj.GetName(), a)
		}
	}
	r := mustPlugin(t, "", "list", "-n", ns, "-o", "wide")
	for _, want := range []string{"CREATED-BY", me, "TTL", "2h0m0s", "VERSION", pod.Annotations[sandbox.AnnotationVersion]} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list -o wide lacks %q:\n%s", want, r.stdout)
		}
	}
}

// A client-side dry run shows the DNS rule create would make, found the
// same way.
func TestDryRunShowsTheClusterDNSRule(t *testing.T) {
	requireUsers(t) // withClusterDNS owns kube-system/kube-dns only on the local cluster
	withClusterDNS(t)
	r := mustPlugin(t, "", "create", "dns", "--profile", "moderate", "--dry-run=client", "-o", "yaml")
	var list corev1.List
	if err := yaml.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.stdout, "port: 5353") || !strings.Contains(r.stdout, "k8s-app: kube-dns") {
		t.Errorf("the dry run does not show the DNS the cluster has (kube-dns on 5353):\n%s", r.stdout)
	}
}
