package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// The rows of injected model keys (issue #25): a user with the plugin's
// Role writes a sandbox's entry in the key table (patch on that one
// Secret) and reads the usage record (get on that one ConfigMap).
func init() {
	rbacRows = append(rbacRows,
		rbacRow{name: "create with an injected key, the proxy and its key table installed by an admin", args: "create rb-inject -n {ns} --inject E2E_RBAC_MODEL_KEY=api.example.com",
			setup: all(egressInstalled, keyTableMade, absent("rb-inject")), check: injected("rb-inject"),
			needs: []string{"get services", "get deployments.apps", "get networkpolicies.networking.k8s.io", "create pods", "patch secrets", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods"}},
		rbacRow{name: "create --pool with an injected key: the claim writes the member's entry", args: "create rb-iclaim --pool rb-ipw -n {ns} --secret-env E2E_RBAC_MODEL_KEY",
			setup: all(egressInstalled, keyTableMade, claimAbsent("rb-iclaim"), injectingPoolReady("rb-ipw")), check: claimInjected("rb-iclaim"),
			needs: []string{"get podtemplates", "list pods", "patch pods", "patch secrets", "create pods", "create networkpolicies.networking.k8s.io", "get networkpolicies.networking.k8s.io"}},
		rbacRow{name: "delete removes the sandbox's key entry", args: "delete rb-idel -n {ns}", setup: all(egressInstalled, keyTableMade, injectedRunning("rb-idel")), check: entryGone("rb-idel"),
			needs: []string{"get pods", "delete pods", "list pods", "watch pods", "get secrets", "patch secrets"}},
		rbacRow{name: "usage", args: "usage -n {ns}", setup: usageRecorded, check: printed("api.example.com"),
			needs: []string{"get configmaps"}},
	)
}

// injectingPoolReady: a pool whose members are made for an injected key.
func injectingPoolReady(pool string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		if !poolExists(t, ns, pool) {
			mustPlugin(t, "", "pool", "create", pool, "--size", "1", "-n", ns, "--inject", "E2E_RBAC_MODEL_KEY=api.example.com")
		}
		eventually(t, 2*time.Minute, "a ready member of pool "+pool, func() bool {
			ready, _ := warmMembers(t, ns, pool)
			return len(ready) > 0
		})
	}
}

// claimInjected: the claimed member carries a grant whose entry holds the
// key; no Pod or other Secret does.
func claimInjected(name string) func(string, rbacRun) error {
	return func(ns string, r rbacRun) error {
		if !strings.Contains(r.stdout+r.stderr, "claimed warm") {
			return fmt.Errorf("not claimed warm")
		}
		ctx := context.Background()
		pods, err := env.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sandbox.LabelSandbox + "=" + name})
		if err != nil || len(pods.Items) != 1 {
			return fmt.Errorf("the claimed sandbox: %v (%d pods)", err, len(pods.Items))
		}
		return entryOf(ctx, ns, &pods.Items[0])
	}
}

// injectedRunning: a sandbox made (by the admin) with an injected key.
func injectedRunning(name string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		absent(name)(t, ns)
		mustPlugin(t, "", "create", name, "-n", ns, "--inject", "E2E_RBAC_MODEL_KEY=api.example.com")
	}
}

// entryGone: the deleted sandbox's entry is no longer in the key table.
func entryGone(name string) func(string, rbacRun) error {
	return func(ns string, _ rbacRun) error {
		table, err := env.cs.CoreV1().Secrets(ns).Get(context.Background(), keys.SecretName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, ok := table.Data[sandbox.PodName(name)]; ok {
			return fmt.Errorf("the entry of %s is still in the key table", name)
		}
		return nil
	}
}

// keyTableMade: the table as `egress install` makes it, empty.
func keyTableMade(t *testing.T, ns string) {
	t.Helper()
	_, err := env.cs.CoreV1().Secrets(ns).Create(context.Background(), sandbox.KeyTable(ns, nil), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// usageRecorded: what the proxy would publish.
func usageRecorded(t *testing.T, ns string) {
	t.Helper()
	b, _ := json.Marshal(keys.Usage{Hosts: map[string]keys.HostUsage{"api.example.com": {Requests: 3, InputTokens: 10}}})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: keys.UsageConfigMapName}, Data: map[string]string{"agentkernel-rb-x": string(b)}}
	_, err := env.cs.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) { // egress install makes it empty
		patch, _ := json.Marshal(map[string]any{"data": cm.Data})
		_, err = env.cs.CoreV1().ConfigMaps(ns).Patch(context.Background(), keys.UsageConfigMapName, types.MergePatchType, patch, metav1.PatchOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// injected: the sandbox's Pod carries the grant of its entry, which holds
// the key; the Pod and the sandbox's objects do not.
func injected(name string) func(string, rbacRun) error {
	return func(ns string, _ rbacRun) error {
		ctx := context.Background()
		pod, err := env.cs.CoreV1().Pods(ns).Get(ctx, sandbox.PodName(name), metav1.GetOptions{})
		if err != nil {
			return err
		}
		return entryOf(ctx, ns, pod)
	}
}

// rbacModelKey is the rows' injected key: a value of its own, since other
// rows put rbacSecret into their sandboxes' Secrets, as --secret-env does.
const rbacModelKey = "sk-e2e-rbac-model-key-5551212"

// keyNowhereElse: no Pod, and no Secret but the key table, holds key.
func keyNowhereElse(ctx context.Context, ns, key string) error {
	pods, err := env.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	secrets, err := env.cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var objs []any
	for i := range pods.Items {
		objs = append(objs, &pods.Items[i])
	}
	for i := range secrets.Items {
		if secrets.Items[i].Name != keys.SecretName {
			objs = append(objs, &secrets.Items[i])
		}
	}
	for _, o := range objs {
		b, _ := json.Marshal(o)
		if containsKey(b, key) {
			return fmt.Errorf("the key is in %s", b[:min(len(b), 200)])
		}
	}
	return nil
}

// entryOf: pod's entry in the key table holds the row's key under the
// Pod's grant, and no Pod or other Secret of ns holds the key.
func entryOf(ctx context.Context, ns string, pod *corev1.Pod) error {
	table, err := env.cs.CoreV1().Secrets(ns).Get(ctx, keys.SecretName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	e, err := keys.Decode(table.Data[pod.Name])
	if err != nil {
		return fmt.Errorf("the entry of %s: %v", pod.Name, err)
	}
	if c, ok := e.For("api.example.com"); !ok || c.Key != rbacModelKey || e.Grant != pod.Annotations[keys.GrantAnnotation] {
		return fmt.Errorf("entry for %s does not match its Pod (grant %q)", pod.Name, pod.Annotations[keys.GrantAnnotation])
	}
	return keyNowhereElse(ctx, ns, rbacModelKey)
}
