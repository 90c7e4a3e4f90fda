package pool

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

func injectingPool(s *sandbox.Spec) {
	s.Network = sandbox.NetworkNone
	s.AllowHosts = []string{"api.anthropic.com:443"}
	s.EgressProxyURL = fence.ProxyURL("ns", "10.96.0.9")
	s.Inject = []keys.Injection{{Variable: "ANTHROPIC_API_KEY", Host: "api.anthropic.com", Header: "X-Api-Key", BaseURLVariables: []string{"ANTHROPIC_BASE_URL"}}}
}

// A warm member is made with the placeholder and base URL, and no entry;
// its claim writes a fresh entry for it and puts the grant on the Pod in
// the claim's own patch: no cold start, and the key in no Pod, Secret or
// exec.
func TestClaimWritesTheKeyEntry(t *testing.T) {
	const key = "sk-claim-injected"
	ctx := context.Background()
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, injectingPool)
	if _, err := cs.CoreV1().Secrets("ns").Get(ctx, keys.SecretName, metav1.GetOptions{}); err == nil {
		t.Fatal("a warm member has an entry")
	}
	members := podsIn(t, cs, "ns")
	if len(members) != 1 || members[0].Annotations[keys.GrantAnnotation] != "" {
		t.Fatalf("members %d, grant %q", len(members), members[0].Annotations[keys.GrantAnnotation])
	}
	rec := &execRecorder{}
	claim := claimSpec("task")
	claim.SecretEnvNames = []string{"ANTHROPIC_API_KEY"}
	a, err := Acquire(ctx, cs, claim, AcquireOptions{
		Pool: "warm", Exec: rec.execFor(t),
		CreateOptions: sandbox.CreateOptions{SecretValues: map[string]string{"ANTHROPIC_API_KEY": key}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Warm {
		t.Fatalf("cold: %s", a.Why)
	}
	table, err := cs.CoreV1().Secrets("ns").Get(ctx, keys.SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := keys.Decode(table.Data[a.Pod.Name])
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := e.For("api.anthropic.com"); !ok || c.Key != key || e.Grant != a.Pod.Annotations[keys.GrantAnnotation] {
		t.Fatalf("entry %+v, pod's grant %q", e, a.Pod.Annotations[keys.GrantAnnotation])
	}
	// The grant came with the claim's one patch of the Pod.
	found := false
	for _, p := range patchesOf(cs, "pods") {
		found = found || strings.Contains(string(p.GetPatch()), keys.GrantAnnotation)
	}
	if !found {
		t.Error("no claim patch carries the grant")
	}
	if a.Secret != nil {
		t.Errorf("the injected key went into a Secret: %v", a.Secret.Data)
	}
	for _, in := range rec.stdins {
		if strings.Contains(in, key) {
			t.Error("the key was delivered into the sandbox")
		}
	}
}
