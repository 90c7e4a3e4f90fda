package e2e

import (
	"context"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// egress install makes the model-key table and the usage ConfigMap, empty
// and ours; the API server lets the proxy's ServiceAccount read that one
// Secret (a watch by name included) and no other, and write that one
// ConfigMap; uninstall removes both.
func TestEgressInstallMakesTheKeyTableOnlyTheProxyReads(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := newNamespace(t)
	mustPlugin(t, "", "egress", "install", "-n", ns, "--api-server", "10.0.0.1:443")

	sec, err := env.cs.CoreV1().Secrets(ns).Get(ctx, keys.SecretName, metav1.GetOptions{})
	if err != nil || len(sec.Data) != 0 || sec.Labels[sandbox.LabelManagedBy] != sandbox.ManagedBy {
		t.Fatalf("the key table: %+v, %v", sec, err)
	}
	cm, err := env.cs.CoreV1().ConfigMaps(ns).Get(ctx, keys.UsageConfigMapName, metav1.GetOptions{})
	if err != nil || len(cm.Data) != 0 || cm.Labels[sandbox.LabelManagedBy] != sandbox.ManagedBy {
		t.Fatalf("the usage ConfigMap: %+v, %v", cm, err)
	}

	sa := "system:serviceaccount:" + ns + ":" + fence.ProxyName
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	for _, tc := range []struct {
		verb, resource, name string
		want                 bool
	}{
		{"get", "secrets", keys.SecretName, true},
		{"list", "secrets", keys.SecretName, true}, // a list by metadata.name, as the informer sends it
		{"watch", "secrets", keys.SecretName, true},
		{"get", "secrets", "someone-elses", false},
		{"list", "secrets", "", false},
		{"watch", "secrets", "", false},
		{"patch", "secrets", keys.SecretName, false},
		{"patch", "configmaps", keys.UsageConfigMapName, true},
		{"get", "configmaps", keys.UsageConfigMapName, true},
		{"patch", "configmaps", "someone-elses", false},
		{"create", "configmaps", "", false},
		{"watch", "pods", "", true},
	} {
		r, err := env.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: sa, Groups: groups, ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: tc.verb, Resource: tc.resource, Name: tc.name,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.Allowed != tc.want {
			t.Errorf("the proxy may %s %s %q: %v, want %v (%s)", tc.verb, tc.resource, tc.name, r.Status.Allowed, tc.want, r.Status.Reason)
		}
	}

	// The proxy itself, as its ServiceAccount: it reads the key table
	// (it listens only once that watch has synced) and removes the usage
	// of a Pod that is gone.
	cm.Data = map[string]string{"agentkernel-gone": `{"hosts":{}}`}
	if _, err := env.cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, ns, "--as", sa)
	eventually(t, time.Minute, "the proxy to remove the usage of a Pod that is gone", func() bool {
		cm, err := env.cs.CoreV1().ConfigMaps(ns).Get(ctx, keys.UsageConfigMapName, metav1.GetOptions{})
		return err == nil && len(cm.Data) == 0
	})
	if l := p.find("usage", nil); l != nil {
		t.Errorf("the proxy could not publish usage: %v", l)
	}

	mustPlugin(t, "", "egress", "uninstall", "-n", ns)
	if _, err := env.cs.CoreV1().Secrets(ns).Get(ctx, keys.SecretName, metav1.GetOptions{}); err == nil {
		t.Error("uninstall left the key table")
	}
	if _, err := env.cs.CoreV1().ConfigMaps(ns).Get(ctx, keys.UsageConfigMapName, metav1.GetOptions{}); err == nil {
		t.Error("uninstall left the usage ConfigMap")
	}
}
