package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

func TestCreateIsAdmittedUnderRestricted(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	ctx := context.Background()
	events := recordPodEvents(t, ns)
	start := time.Now()
	createSandbox(t, ns, "demo")
	t.Logf("create (to Running) took %s", time.Since(start))

	pod, err := env.cs.CoreV1().Pods(ns).Get(ctx, "agentkernel-demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodRunning {
		t.Fatalf("create returned before the sandbox ran: %s", pod.Status.Phase)
	}
	np, err := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, "agentkernel-demo", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the restrictive sandbox has no NetworkPolicy: %v", err)
	}
	if len(np.OwnerReferences) != 1 || np.OwnerReferences[0].UID != pod.UID {
		t.Fatalf("NetworkPolicy not owned by the pod: %+v", np.OwnerReferences)
	}
	// Resource versions come from one etcd revision counter: the policy
	// (never modified since its creation) must precede the write that made
	// the Pod schedulable, and the Pod must have been created gated.
	first, ungated := events.gateHistory(t, pod.UID)
	if !first {
		t.Fatal("the pod was created without its scheduling gate")
	}
	if ungated == 0 || rv(t, np.ResourceVersion) >= ungated {
		t.Fatalf("NetworkPolicy at revision %s, pod ungated at %d: the policy must exist first", np.ResourceVersion, ungated)
	}

	// Proof the namespace really enforces: the same spec, weakened, is refused.
	spec := sandbox.NewSpec("weak", ns)
	weak := spec.Pod()
	weak.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
	weak.Spec.Containers[0].SecurityContext.Capabilities = nil
	_, err = env.cs.CoreV1().Pods(ns).Create(ctx, weak, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Fatalf("a weakened sandbox was not refused by Pod Security: %v", err)
	}
}

func TestCreateNamespaceLabelsIt(t *testing.T) {
	requireCluster(t)
	ns := "e2e-created-" + newNamespace(t)[4:] // unique; newNamespace's cleanup is for its own
	ns = ns[:min(len(ns), 60)]
	t.Cleanup(func() { deleteNamespace(t, ns) })
	createSandbox(t, ns, "demo", "--create-namespace")
	got, err := env.cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Fatalf("namespace labels: %v", got.Labels)
	}
}

func TestListFromTheCluster(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "one", "--label", "team=a")
	createSandbox(t, ns, "two", "--profile", "permissive")

	var list corev1.PodList
	r := mustPlugin(t, "", "list", "-n", ns, "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("list -o json: %v\n%s", err, r.stdout)
	}
	if len(list.Items) != 2 {
		t.Fatalf("listed %d sandboxes", len(list.Items))
	}
	r = mustPlugin(t, "", "list", "-n", ns, "-l", "team=a", "-o", "name")
	if r.stdout != "sandbox/one\n" {
		t.Fatalf("list -l: %q", r.stdout)
	}
	r = mustPlugin(t, "", "list", "-A", "-o", "wide")
	for _, want := range []string{"NAMESPACE", ns, "one", "two", "Running", "restrictive", "permissive", "NODE"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list -A -o wide lacks %q:\n%s", want, r.stdout)
		}
	}
	// Pods that are not sandboxes never show up.
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agentkernel-foreign"}}
	spec := sandbox.NewSpec("x", ns)
	foreign.Spec = spec.Pod().Spec
	if _, err := env.cs.CoreV1().Pods(ns).Create(context.Background(), foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r = mustPlugin(t, "", "list", "-n", ns, "-o", "name")
	if strings.Contains(r.stdout, "foreign") {
		t.Fatalf("an unmanaged pod was listed:\n%s", r.stdout)
	}
}

func TestDryRunServerCreatesNothing(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	os.Setenv("E2E_DRY_SECRET", "s3cret")
	r := mustPlugin(t, "", "create", "demo", "-n", ns, "--dry-run=server", "--secret-env", "E2E_DRY_SECRET")
	if strings.TrimSpace(r.stdout) != "sandbox/demo created (server dry run)" {
		t.Fatalf("stdout %q", r.stdout)
	}
	assertNothingLeft(t, ns)
	r = mustPlugin(t, "", "create", "demo", "-n", ns, "--dry-run=server", "-o", "yaml")
	if !strings.Contains(r.stdout, "runAsNonRoot: true") {
		t.Fatalf("server dry run -o yaml:\n%s", r.stdout)
	}
	assertNothingLeft(t, ns)
}

func TestDeleteRemovesDependentsThroughGC(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	ctx := context.Background()
	os.Setenv("E2E_API_KEY", "sk-e2e-secret-value")
	createSandbox(t, ns, "demo", "--secret-env", "E2E_API_KEY")

	pod, err := env.cs.CoreV1().Pods(ns).Get(ctx, "agentkernel-demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(pod.String(), "sk-e2e-secret-value") {
		t.Fatal("the secret value is in the pod spec")
	}
	secret, err := env.cs.CoreV1().Secrets(ns).Get(ctx, "agentkernel-demo-env", metav1.GetOptions{})
	if err != nil || string(secret.Data["E2E_API_KEY"]) != "sk-e2e-secret-value" {
		t.Fatalf("secret: %v %v", secret, err)
	}
	if len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].UID != pod.UID {
		t.Fatalf("secret not owned by the pod: %+v", secret.OwnerReferences)
	}

	start := time.Now()
	r := mustPlugin(t, "", "delete", "demo", "-n", ns)
	t.Logf("delete --wait took %s", time.Since(start))
	if r.stdout != "sandbox/demo deleted\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if _, err := env.cs.CoreV1().Pods(ns).Get(ctx, "agentkernel-demo", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("delete --wait returned before the pod was gone: %v", err)
	}
	// The plugin deletes only the pod; the garbage collector takes the rest.
	eventually(t, time.Minute, "NetworkPolicy and Secret removed by the garbage collector", func() bool {
		return len(objectsLeft(t, ns)) == 0
	})

	r = plugin(t, "", "delete", "demo", "-n", ns)
	wantError(t, r, `sandbox "demo" not found in namespace "`+ns+`"`)
	mustPlugin(t, "", "delete", "demo", "-n", ns, "--ignore-not-found")
}

func TestDeleteAllAndBySelectorOnlyTouchesSandboxes(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	ctx := context.Background()
	createSandbox(t, ns, "a", "--label", "batch=1")
	t.Setenv("E2E_B_KEY", "b-secret")
	createSandbox(t, ns, "b", "--label", "batch=2", "--secret-env", "E2E_B_KEY")
	createSandbox(t, ns, "c", "--label", "batch=2")
	// A pod of someone else's, named like a sandbox, with the same labels but managed-by.
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agentkernel-d", Labels: map[string]string{"batch": "2", sandbox.LabelSandbox: "d"}}}
	spec := sandbox.NewSpec("d", ns)
	foreign.Spec = spec.Pod().Spec
	if _, err := env.cs.CoreV1().Pods(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := mustPlugin(t, "", "delete", "-n", ns, "-l", "batch=2")
	if r.stdout != "sandbox/b deleted\nsandbox/c deleted\n" {
		t.Fatalf("delete -l: %q", r.stdout)
	}
	// At once the same name again: the garbage collector may not have removed
	// b's Secret and NetworkPolicy yet, and must not be waited for.
	createSandbox(t, ns, "b", "--secret-env", "E2E_B_KEY")
	mustPlugin(t, "", "delete", "b", "-n", ns)
	// A NetworkPolicy left by a create that died before making its Pod.
	orphanSpec := sandbox.NewSpec("orphan", ns)
	if _, err := env.cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, orphanSpec.NetworkPolicy(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createSandbox(t, ns, "orphan")
	mustPlugin(t, "", "delete", "orphan", "-n", ns)
	wantError(t, plugin(t, "", "delete", "d", "-n", ns), "is not sandbox \"")
	r = mustPlugin(t, "", "delete", "-n", ns, "--all")
	if r.stdout != "sandbox/a deleted\n" {
		t.Fatalf("delete --all: %q", r.stdout)
	}
	if _, err := env.cs.CoreV1().Pods(ns).Get(ctx, "agentkernel-d", metav1.GetOptions{}); err != nil {
		t.Fatalf("the unmanaged pod was touched: %v", err)
	}
}

func TestCreateFailsFastWithTheReasonAndCleansUp(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	start := time.Now()
	r := plugin(t, "", "create", "nowhere", "-n", ns, "--node-selector", "e2e.agentkernel/no-such-node=true")
	wantError(t, r, "Unschedulable")
	if took := time.Since(start); took > 90*time.Second {
		t.Fatalf("took %s: not failing fast", took)
	}
	assertNothingLeft(t, ns)

	// Admission denial: a LimitRange caps memory below the sandbox's request.
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "small"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type: corev1.LimitTypeContainer,
		Max:  corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
	}}}}
	if _, err := env.cs.CoreV1().LimitRanges(ns).Create(context.Background(), lr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r = plugin(t, "", "create", "big", "-n", ns, "--memory", "1Gi")
	wantError(t, r, "forbidden")
	assertNothingLeft(t, ns)
	mustPlugin(t, "", "create", "small", "-n", ns, "--memory", "64Mi")
}

func TestInterruptedCreateRemovesWhatItMade(t *testing.T) {
	requireSimulated(t) // the simulated node never readies pods labelled e2e.agentkernel/hold
	ns := newNamespace(t)
	cmd := exec.Command(env.binary, "--kubeconfig", env.kubeconfig, "create", "held", "-n", ns, "--label", localcluster.HoldLabel+"=true")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the sandbox pod to exist", func() bool {
		_, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), "agentkernel-held", metav1.GetOptions{})
		return err == nil
	})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	exitErr, ok := err.(*exec.ExitError)
	if !ok || exitErr.ExitCode() != 130 {
		t.Fatalf("interrupted create: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("stderr: %s", stderr.String())
	}
	assertNothingLeft(t, ns)
}
