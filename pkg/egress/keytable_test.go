package egress

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

func keyTable(t *testing.T, rows map[string]keys.Entry) *corev1.Secret {
	t.Helper()
	data := map[string][]byte{}
	for pod, e := range rows {
		b, err := keys.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		data[pod] = b
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: keys.SecretName, Namespace: ns}, Data: data}
}

func startKeys(t *testing.T, cs *fake.Clientset) *SecretKeys {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	k := NewSecretKeys(cs, ns)
	go k.Run(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := k.WaitForSync(wctx); err != nil {
		t.Fatal(err)
	}
	return k
}

func keyedPod(t *testing.T, grant string) *corev1.Pod {
	p := sandboxPod(t, "a", clientA.String(), "api.example.com")
	p.Annotations[keys.GrantAnnotation] = grant
	return p
}

// The proxy follows the Pods and the key table as they change: deleting
// the sandbox ends its key's use at once, a later sandbox of the same
// name does not inherit the row, and its own row works.
func TestRouteFollowsThePodsAndTheKeyTable(t *testing.T) {
	ctx := context.Background()
	pod := keyedPod(t, grantA)
	cs := fakecluster.New(pod, keyTable(t, map[string]keys.Entry{
		pod.Name: {Grant: grantA, Credentials: []keys.Credential{apiCredential("sk-real-a")}},
	}))
	log := &syncBuffer{}
	grants, table := startGrants(t, cs, log), startKeys(t, cs)
	h := newInjectHarness(t, nil, func(p *Proxy) { p.Grants, p.Keys = grants, table })
	if resp, body := h.route(t, clientA, "POST", messages, nil, "{}"); resp.StatusCode != 200 {
		t.Fatalf("with its row: %d %s", resp.StatusCode, body)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Pod's grants to go", func() bool { _, err := grants.Lookup(clientA); return err != nil })
	if resp, body := h.route(t, clientA, "POST", messages, nil, "{}"); resp.StatusCode != 403 || !strings.Contains(body, "has no egress grants") {
		t.Fatalf("after the sandbox was deleted: %d %s", resp.StatusCode, body)
	}

	later := keyedPod(t, grantB)
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, later, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the later Pod's grants", func() bool { g, err := grants.Lookup(clientA); return err == nil && g.KeyGrant == grantB })
	if resp, body := h.route(t, clientA, "POST", messages, nil, "{}"); resp.StatusCode != 403 || !strings.Contains(body, "made for another grant") {
		t.Fatalf("a later sandbox of the same name with the earlier row: %d %s", resp.StatusCode, body)
	}

	if _, err := cs.CoreV1().Secrets(ns).Update(ctx, keyTable(t, map[string]keys.Entry{
		later.Name: {Grant: grantB, Credentials: []keys.Credential{apiCredential("sk-real-later")}},
	}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new row", func() bool { e, ok, _ := table.Entry(later.Name); return ok && e.Grant == grantB })
	if resp, body := h.route(t, clientA, "POST", messages, nil, "{}"); resp.StatusCode != 200 {
		t.Fatalf("with its own row: %d %s", resp.StatusCode, body)
	}
	if got := h.api.got(); len(got) != 2 || got[1].header.Get("X-Api-Key") != "sk-real-later" {
		t.Fatalf("the API got %d requests; the last with the later sandbox's key? %v", len(got), got)
	}

	// A row that does not decode is refused, saying why, never used.
	bad := keyTable(t, nil)
	bad.Data = map[string][]byte{later.Name: []byte(`{"grant":"` + grantB + `","credentials":[{"variable":"K","host":"api.example.com","header":"X-Api-Key","key":""}]}`)}
	if _, err := cs.CoreV1().Secrets(ns).Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bad row", func() bool { _, _, err := table.Entry(later.Name); return err != nil })
	if resp, body := h.route(t, clientA, "POST", messages, nil, "{}"); resp.StatusCode != 403 || !strings.Contains(body, "cannot be used") {
		t.Fatalf("a row that does not decode: %d %s", resp.StatusCode, body)
	}
	if err := cs.CoreV1().Secrets(ns).Delete(ctx, keys.SecretName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the table to go", func() bool { _, ok, _ := table.Entry(later.Name); return !ok })
	if resp, body := h.route(t, clientA, "POST", messages, nil, "{}"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "has no row") {
		t.Fatalf("without the table: %d %s", resp.StatusCode, body)
	}
}
