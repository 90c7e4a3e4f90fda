package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Persistent pools on the real control plane: the PV controller binds each
// member's workspace while it waits, the garbage collector removes a
// member's workspace after its Pod, and a claimed sandbox suspends,
// resumes and is deleted like one made by create --persist.

// poolWorkspaces lists the workspaces of pool's members and of sandboxes
// claimed from it (named as the members were), by name.
func poolWorkspaces(t *testing.T, ns, poolName string) map[string]corev1.PersistentVolumeClaim {
	t.Helper()
	list, err := env.cs.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sandbox.ManagedSelector})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]corev1.PersistentVolumeClaim{}
	for _, c := range list.Items {
		if strings.HasPrefix(c.Name, sandbox.PoolMemberPrefix(poolName)) && c.DeletionTimestamp == nil {
			out[c.Name] = c
		}
	}
	return out
}

// claimNameOf is the workspace a Pod mounts, "" for none.
func claimNameOf(pod *corev1.Pod) string {
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			return v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

// The life of a persistent pool and of a sandbox claimed from it.
func TestPoolPersistentClaimSuspendResumeDelete(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	class := storageFor(t, 4) // 2 members, a refill, and one spare
	ctx := context.Background()

	mustPlugin(t, "", "pool", "create", "keep", "--size", "2", "--persist=1Gi", "--storage-class", class, "-n", ns)
	ready, _ := warmMembers(t, ns, "keep")
	if len(ready) != 2 {
		t.Fatalf("%d ready members, want 2", len(ready))
	}
	for _, m := range ready {
		w, err := env.cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, m.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("member %s has no workspace of its name: %v", m.Name, err)
		}
		if claimNameOf(&m) != m.Name || w.Status.Phase != corev1.ClaimBound || !ownedBy(w.OwnerReferences, "Pod", m.UID) {
			t.Fatalf("member %s mounts %q; its workspace is %s, owned by %+v: want its own, bound, owned by it", m.Name, claimNameOf(&m), w.Status.Phase, w.OwnerReferences)
		}
	}

	r := mustPlugin(t, "", "create", "task", "--pool", "keep", "--persist", "-n", ns)
	if !strings.Contains(r.stdout, "sandbox/task created (claimed warm from pool keep)") {
		t.Fatalf("create --pool --persist printed %q", r.stdout)
	}
	pods := sandboxPods(t, ns)["task"]
	if len(pods) != 1 || !strings.HasPrefix(pods[0].Name, sandbox.PoolMemberPrefix("keep")) {
		t.Fatalf("the claimed sandbox's pods: %v", pods)
	}
	claimed := pods[0]
	member := claimed.Name
	w, err := env.cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, member, metav1.GetOptions{})
	if err != nil || w.Labels[sandbox.LabelSandbox] != "task" || len(w.OwnerReferences) != 0 || w.Annotations[sandbox.AnnotationRecord] == "" {
		t.Fatalf("the claimed workspace must be the sandbox's root (its label and record, no owner): %v %+v", err, w)
	}
	if !ownedBy(claimed.OwnerReferences, "PersistentVolumeClaim", w.UID) || len(claimed.OwnerReferences) != 1 {
		t.Fatalf("the claimed Pod must be owned by its workspace alone: %+v", claimed.OwnerReferences)
	}
	eventually(t, time.Minute, "the pool to refill with a bound workspace", func() bool {
		ready, _ := warmMembers(t, ns, "keep")
		bound := 0
		for _, m := range ready {
			if c, ok := poolWorkspaces(t, ns, "keep")[m.Name]; ok && c.Status.Phase == corev1.ClaimBound {
				bound++
			}
		}
		return bound == 2
	})

	r = mustPlugin(t, "", "suspend", "task", "-n", ns)
	if strings.TrimSpace(r.stdout) != "sandbox/task suspended" {
		t.Fatalf("suspend printed %q", r.stdout)
	}
	if len(sandboxPods(t, ns)["task"]) != 0 {
		t.Fatal("the Pod is still there after suspend returned")
	}
	if w, err = env.cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, member, metav1.GetOptions{}); err != nil || w.Annotations[sandbox.AnnotationSuspendedAt] == "" {
		t.Fatalf("suspend must keep the workspace, stamped: %v %+v", err, w)
	}
	list := mustPlugin(t, "", "list", "-n", ns)
	if !strings.Contains(list.stdout, "task") || !strings.Contains(list.stdout, "Suspended") {
		t.Fatalf("list does not show the suspended sandbox:\n%s", list.stdout)
	}

	r = mustPlugin(t, "", "resume", "task", "-n", ns)
	if !strings.Contains(r.stdout, "sandbox/task resumed") {
		t.Fatalf("resume printed %q", r.stdout)
	}
	resumed, ok := getSandboxPod(t, ns, "task")
	if !ok || resumed.UID == claimed.UID || claimNameOf(resumed) != member || !ownedBy(resumed.OwnerReferences, "PersistentVolumeClaim", w.UID) {
		t.Fatalf("resumed as itself on its workspace %s, owned by it: got %+v", member, resumed)
	}
	if resumed.Labels[sandbox.LabelPool] != sandbox.PoolActive {
		t.Fatalf("the resumed sandbox came from the pool (label %s=%q)", sandbox.LabelPool, resumed.Labels[sandbox.LabelPool])
	}
	if ready, all := warmMembers(t, ns, "keep"); len(ready) != 2 || len(all) != 2 {
		t.Fatalf("resume touched the pool: %d ready of %d members", len(ready), len(all))
	}
	mustPlugin(t, "", "exec", "task", "-n", ns, "--", "true")

	mustPlugin(t, "", "delete", "task", "-n", ns)
	eventually(t, time.Minute, "the claimed sandbox's workspace to go", func() bool {
		_, err := env.cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, member, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	// A member deleted by anyone (here kubectl delete pod, as an admin
	// would) takes its workspace with it, after it.
	_, all := warmMembers(t, ns, "keep")
	gone := all[0]
	if err := env.cs.CoreV1().Pods(ns).Delete(ctx, gone.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the deleted member's workspace to go", func() bool {
		_, err := env.cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, gone.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	// Scaling down removes members and, after them, their workspaces;
	// deleting the pool leaves no workspace.
	mustPlugin(t, "", "pool", "scale", "keep", "--size", "1", "-n", ns)
	eventually(t, time.Minute, "one member and one workspace", func() bool {
		_, all := warmMembers(t, ns, "keep")
		return len(all) == 1 && len(poolWorkspaces(t, ns, "keep")) == 1
	})
	mustPlugin(t, "", "pool", "delete", "keep", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}

// The errors of persistent pools: each exits non-zero, says what to do,
// claims no member and leaves nothing.
func TestPoolPersistentErrors(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	class := storageFor(t, 1)

	wantError(t, plugin(t, "", "pool", "create", "p", "--size", "1", "--storage-class", class, "-n", ns), "--storage-class needs --persist")
	wantError(t, plugin(t, "", "pool", "create", "p", "--size", "1", "--persist=0", "-n", ns), "--persist")
	if podTemplatesLeft(t, ns) != 0 {
		t.Fatal("a refused pool create made a pool")
	}
	assertNothingLeft(t, ns)

	mustPlugin(t, "", "pool", "create", "plain", "--size", "1", "-n", ns)
	mustPlugin(t, "", "pool", "create", "kept", "--size", "1", "--persist=1Gi", "--storage-class", class, "-n", ns)
	before := poolWorkspaces(t, ns, "kept")

	wantError(t, plugin(t, "", "create", "x", "--pool", "plain", "--persist", "-n", ns),
		`pool "plain" in namespace "`+ns+`" is not persistent: its sandboxes have no workspace; leave out --persist`)
	wantError(t, plugin(t, "", "create", "x", "--pool", "kept", "-n", ns),
		`pool "kept" in namespace "`+ns+`" is persistent: each of its sandboxes keeps its work on a workspace of its own (1Gi), kept until the sandbox is deleted; claim with --persist`)
	wantError(t, plugin(t, "", "create", "x", "--pool", "kept", "--persist=5Gi", "-n", ns),
		`--persist: the pool has 1Gi, the claim asks for 5Gi`)
	wantError(t, plugin(t, "", "create", "x", "--pool", "kept", "--persist", "--storage-class", "other", "-n", ns),
		`--storage-class: the pool has "`+class+`", the claim asks for "other"`)
	if len(sandboxPods(t, ns)) != 0 {
		t.Fatal("a refused claim made a sandbox")
	}
	for _, p := range []string{"plain", "kept"} {
		if ready, all := warmMembers(t, ns, p); len(ready) != 1 || len(all) != 1 {
			t.Fatalf("a refused claim took a member of %s", p)
		}
	}
	if after := poolWorkspaces(t, ns, "kept"); len(after) != len(before) || len(after) != 1 {
		t.Fatalf("a refused claim changed the workspaces: %v, was %v", after, before)
	}
	if _, err := env.cs.CoreV1().PodTemplates(ns).Get(context.Background(), pool.PoolTemplateName("kept"), metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}

	mustPlugin(t, "", "pool", "delete", "plain", "kept", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}
