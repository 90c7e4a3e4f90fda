package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

const secretKey = "sk-ant-very-secret"

func anthropicInjection() keys.Injection {
	return keys.Injection{Variable: "ANTHROPIC_API_KEY", Host: "api.anthropic.com", Header: "X-Api-Key",
		Paths: []string{"/v1/"}, BaseURLVariables: []string{"ANTHROPIC_BASE_URL"}}
}

func injectSpec(t *testing.T) Spec {
	t.Helper()
	s := allowHostsSpec(t, "api.anthropic.com")
	s.Inject = []keys.Injection{anthropicInjection()}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func envOf(pod *corev1.Pod) map[string]string {
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	return env
}

func TestInjectEnvironment(t *testing.T) {
	s := injectSpec(t)
	s.KeyGrant = keys.NewGrant()
	pod := s.Pod()
	env := envOf(pod)
	if env["ANTHROPIC_API_KEY"] != keys.Placeholder {
		t.Errorf("the key's variable holds %q", env["ANTHROPIC_API_KEY"])
	}
	if got := env["ANTHROPIC_BASE_URL"]; got != "http://10.96.7.8:3128/agentkernel/inject/api.anthropic.com" {
		t.Errorf("base URL %q", got)
	}
	if env["NO_PROXY"] != "localhost,127.0.0.1,::1,10.96.7.8" || env["no_proxy"] != env["NO_PROXY"] {
		t.Errorf("NO_PROXY %q no_proxy %q", env["NO_PROXY"], env["no_proxy"])
	}
	if pod.Annotations[keys.GrantAnnotation] != s.KeyGrant {
		t.Errorf("grant annotation %q", pod.Annotations[keys.GrantAnnotation])
	}
	if len(pod.Spec.Containers[0].EnvFrom) != 0 {
		t.Errorf("an injected key needs no Secret: %+v", pod.Spec.Containers[0].EnvFrom)
	}
	// Without injection, NO_PROXY is the sandbox alone.
	plain := allowHostsSpec(t, "api.anthropic.com")
	if got := envOf(plain.Pod())["NO_PROXY"]; got != "localhost,127.0.0.1,::1" {
		t.Errorf("NO_PROXY without inject: %q", got)
	}
}

func TestInjectValidate(t *testing.T) {
	for name, mutate := range map[string]func(*Spec){
		"no allowHosts": func(s *Spec) { s.AllowHosts, s.Network = nil, NetworkNone },
		"host not allowed": func(s *Spec) {
			s.Inject[0].Host = "api.openai.com"
		},
		"also secret":      func(s *Spec) { s.SecretEnvNames = []string{"ANTHROPIC_API_KEY"} },
		"also plain":       func(s *Spec) { s.Env = []corev1.EnvVar{{Name: "ANTHROPIC_API_KEY", Value: "x"}} },
		"two for one host": func(s *Spec) { s.Inject = append(s.Inject, s.Inject[0]) },
		"bad header":       func(s *Spec) { s.Inject[0].Header = "x-api-key" },
	} {
		s := injectSpec(t)
		mutate(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
}

// Create writes the entry (the key in the table alone), the Pod carries
// the entry's grant, and neither the Pod nor any Secret of the sandbox
// holds the key.
func TestCreateWritesKeyEntry(t *testing.T) {
	ctx := context.Background()
	cs := fakeCluster()
	s := injectSpec(t)
	created, err := Create(ctx, cs, &s, CreateOptions{SecretValues: map[string]string{"ANTHROPIC_API_KEY": secretKey}})
	if err != nil {
		t.Fatal(err)
	}
	table, err := cs.CoreV1().Secrets("agents").Get(ctx, keys.SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := keys.Decode(table.Data[created.Pod.Name])
	if err != nil {
		t.Fatal(err)
	}
	c, ok := e.For("api.anthropic.com")
	if !ok || c.Key != secretKey || c.Header != "X-Api-Key" {
		t.Fatalf("entry %+v", e)
	}
	if e.Grant == "" || created.Pod.Annotations[keys.GrantAnnotation] != e.Grant {
		t.Fatalf("grant %q, pod's %q", e.Grant, created.Pod.Annotations[keys.GrantAnnotation])
	}
	if table.Labels[LabelManagedBy] != ManagedBy || len(table.OwnerReferences) != 0 {
		t.Errorf("the table as created: %+v", table.ObjectMeta)
	}
	b, _ := json.Marshal(created.Pod)
	if strings.Contains(string(b), secretKey) {
		t.Error("the Pod holds the key")
	}
	secrets, _ := cs.CoreV1().Secrets("agents").List(ctx, metav1.ListOptions{})
	for _, sec := range secrets.Items {
		if sec.Name == keys.SecretName {
			continue
		}
		b, _ := json.Marshal(sec)
		if strings.Contains(string(b), secretKey) {
			t.Errorf("secret %s holds the key", sec.Name)
		}
	}
	// The entry is written while the Pod is still gated: before it can run.
	var order []string
	for _, a := range cs.Actions() {
		switch a := a.(type) {
		case k8stesting.PatchActionImpl:
			order = append(order, "patch "+a.GetResource().Resource)
		case k8stesting.CreateActionImpl:
			order = append(order, "create "+a.GetResource().Resource)
		}
	}
	// The table is missing: the patch is refused and the table created with the entry.
	if strings.Join(order, ",") != "create selfsubjectreviews,create pods,patch secrets,create secrets,create networkpolicies,patch pods" {
		t.Errorf("writes: %v", order)
	}
}

func TestCreateWithoutKeyFails(t *testing.T) {
	cs := fakeCluster()
	s := injectSpec(t)
	_, err := Create(context.Background(), cs, &s, CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "ANTHROPIC_API_KEY is not in your environment") {
		t.Fatalf("err = %v", err)
	}
	pods, _ := cs.CoreV1().Pods("agents").List(context.Background(), metav1.ListOptions{})
	if len(pods.Items) != 0 {
		t.Fatal("a Pod was made")
	}
}

// A create that fails after writing its entry removes it: nothing is left.
func TestCreateFailureRemovesKeyEntry(t *testing.T) {
	ctx := context.Background()
	cs := fakeCluster(KeyTable("agents", map[string][]byte{"other": []byte("x")}))
	cs.PrependReactor("create", "networkpolicies", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "networkpolicies"}, "x", errors.New("no"))
	})
	s := injectSpec(t)
	if _, err := Create(ctx, cs, &s, CreateOptions{SecretValues: map[string]string{"ANTHROPIC_API_KEY": secretKey}}); err == nil {
		t.Fatal("created")
	}
	table, _ := cs.CoreV1().Secrets("agents").Get(ctx, keys.SecretName, metav1.GetOptions{})
	if len(table.Data) != 1 || table.Data["other"] == nil {
		t.Fatalf("table after a failed create: %v", keysOf(table.Data))
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Removing an entry removes that entry only: one a later sandbox of the
// same Pod name wrote meanwhile stays.
func TestKeyEntryRemoveIsExact(t *testing.T) {
	ctx := context.Background()
	cs := fakeCluster()
	s := injectSpec(t)
	e1, _ := s.newKeyEntry(map[string]string{"ANTHROPIC_API_KEY": "one"})
	mine, err := PutKeyEntry(ctx, cs, "agents", "agentkernel-demo", e1)
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := s.newKeyEntry(map[string]string{"ANTHROPIC_API_KEY": "two"})
	if _, err := PutKeyEntry(ctx, cs, "agents", "agentkernel-demo", e2); err != nil {
		t.Fatal(err)
	}
	if err := mine.Remove(ctx, cs); err != nil {
		t.Fatal(err)
	}
	table, _ := cs.CoreV1().Secrets("agents").Get(ctx, keys.SecretName, metav1.GetOptions{})
	got, err := keys.Decode(table.Data["agentkernel-demo"])
	if err != nil || got.Grant != e2.Grant {
		t.Fatalf("the later entry is gone: %v %+v", err, got)
	}
	// By grant: another grant leaves it, its own removes it.
	if err := RemoveKeyEntryOf(ctx, cs, "agents", "agentkernel-demo", e1.Grant); err != nil {
		t.Fatal(err)
	}
	table, _ = cs.CoreV1().Secrets("agents").Get(ctx, keys.SecretName, metav1.GetOptions{})
	if table.Data["agentkernel-demo"] == nil {
		t.Fatal("removed by a grant that is not the entry's")
	}
	if err := RemoveKeyEntryOf(ctx, cs, "agents", "agentkernel-demo", e2.Grant); err != nil {
		t.Fatal(err)
	}
	table, _ = cs.CoreV1().Secrets("agents").Get(ctx, keys.SecretName, metav1.GetOptions{})
	if table.Data["agentkernel-demo"] != nil {
		t.Fatal("not removed by its own grant")
	}
	// Gone already, or no table at all: no error.
	if err := mine.Remove(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if err := RemoveKeyEntryOf(ctx, fakeCluster(), "agents", "x", "g"); err != nil {
		t.Fatal(err)
	}
}

// gc prunes the entries whose Pod is gone or carries another grant, and
// delete removes its sandbox's entry.
func TestGCPrunesKeyEntries(t *testing.T) {
	ctx := context.Background()
	s := injectSpec(t)
	cs := fakeCluster()
	put := func(pod string) keys.Entry {
		e, _ := s.newKeyEntry(map[string]string{"ANTHROPIC_API_KEY": "k"})
		if _, err := PutKeyEntry(ctx, cs, "agents", pod, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	live, _, regranted := put("agentkernel-live"), put("agentkernel-gone"), put("agentkernel-regranted")
	for name, grant := range map[string]string{"live": live.Grant, "regranted": regranted.Grant + "0"} {
		sp := injectSpec(t)
		sp.Name, sp.KeyGrant = name, grant
		pod := sp.Pod()
		pod.UID = "uid-" + types.UID(name)
		pod.Status.Phase = corev1.PodRunning
		if _, err := cs.CoreV1().Pods("agents").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	garbage, err := FindGarbage(ctx, cs, "agents")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, g := range garbage {
		if g.Kind == "key-entry" {
			found = append(found, g.Name+": "+g.Why)
		}
	}
	if strings.Join(found, "; ") != "agentkernel-gone: its Pod is gone; agentkernel-regranted: its Pod carries another grant" {
		t.Fatalf("key-table garbage: %v", found)
	}
	DeleteGarbage(ctx, cs, garbage, func(g Garbage, err error) {
		if err != nil {
			t.Errorf("%s %s: %v", g.Kind, g.Name, err)
		}
	})
	table, _ := cs.CoreV1().Secrets("agents").Get(ctx, keys.SecretName, metav1.GetOptions{})
	if len(table.Data) != 1 || table.Data["agentkernel-live"] == nil {
		t.Fatalf("left %v", keysOf(table.Data))
	}
	// Deleting the live sandbox removes its entry.
	pod, _ := cs.CoreV1().Pods("agents").Get(ctx, "agentkernel-live", metav1.GetOptions{})
	if err := DeletePod(ctx, cs, pod, nil); err != nil {
		t.Fatal(err)
	}
	table, _ = cs.CoreV1().Secrets("agents").Get(ctx, keys.SecretName, metav1.GetOptions{})
	if len(table.Data) != 0 {
		t.Fatalf("left after delete %v", keysOf(table.Data))
	}
}

// A table made meanwhile by another client (AlreadyExists) is patched.
func TestPutKeyEntryCreateRace(t *testing.T) {
	ctx := context.Background()
	cs := fakeCluster()
	raced := false
	cs.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if !raced {
			raced = true
			_ = cs.Tracker().Add(KeyTable("agents", map[string][]byte{"first": []byte("x")}))
			return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, keys.SecretName)
		}
		return false, nil, nil
	})
	s := injectSpec(t)
	e, _ := s.newKeyEntry(map[string]string{"ANTHROPIC_API_KEY": "k"})
	if _, err := PutKeyEntry(ctx, cs, "agents", "second", e); err != nil {
		t.Fatal(err)
	}
	table, _ := cs.CoreV1().Secrets("agents").Get(ctx, keys.SecretName, metav1.GetOptions{})
	if len(table.Data) != 2 {
		t.Fatalf("entries %v", keysOf(table.Data))
	}
}
