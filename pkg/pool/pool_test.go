package pool

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

func TestPoolNamesAndSizes(t *testing.T) {
	for name, want := range map[string]string{
		"":                        "a pool name is required",
		"Agents":                  "invalid pool name",
		"active":                  "reserved",
		strings.Repeat("a", 41):   "at most 40",
		"ok-pool":                 "",
		strings.Repeat("b", 40):   "",
		"-x":                      "invalid pool name",
		"has.dot":                 "invalid pool name",
		"agentkernel-pool-nested": "",
	} {
		err := ValidatePoolName(name)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("ValidatePoolName(%q) = %v, want %q", name, err, want)
		}
	}
	// The longest name leaves room for the API server's 5-character suffix
	// without cutting the prefix that identifies a member.
	if n := len(sandbox.PoolMemberPrefix(strings.Repeat("b", MaxPoolNameLength))) + 5; n > 63 {
		t.Fatalf("a member of the longest pool name is %d characters", n)
	}
	for size, want := range map[int]string{-1: "must not be negative", 0: "at least 1", 1001: "more than 1000", 1: ""} {
		err := ValidatePoolSize(size, true)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("ValidatePoolSize(%d) = %v, want %q", size, err, want)
		}
	}
	if err := ValidatePoolSize(0, false); err != nil {
		t.Errorf("scaling to 0 must be allowed: %v", err)
	}
	spec := sandbox.NewSpec("p", "ns")
	spec.SecretEnvNames = []string{"KEY"}
	if _, err := NewPool("p", spec, 1); err == nil || !strings.Contains(err.Error(), "secretEnvNames belongs to a claim") ||
		field.StepOf(err) != (field.Step{Hint: field.HintSecretOnClaim, Pool: "p", Value: "KEY"}) {
		t.Fatalf("a pool with a secret: %v", err)
	}
}

// Members are exactly cold sandboxes but for their name, labels and owner;
// Pod Security "restricted" admits them; their policy selects them by a
// label no claim changes.
func TestPoolMembersAreColdSandboxes(t *testing.T) {
	cs, tr := poolCluster(t)
	p := newTestPool(t, cs, tr, "warm", 2, func(s *sandbox.Spec) { s.TTL = time.Hour; s.IdleTimeout = time.Minute })
	cold := sandbox.NewSpec("cold", "ns")
	coldPod := cold.Pod()
	for _, m := range podsIn(t, cs, "ns") {
		if !strings.HasPrefix(m.Name, sandbox.PoolMemberPrefix("warm")) || m.Labels[sandbox.LabelSandbox] != "" || m.Labels[sandbox.LabelPool] != "warm" {
			t.Fatalf("member %s: labels %v", m.Name, m.Labels)
		}
		if len(m.OwnerReferences) != 1 || m.OwnerReferences[0].Kind != "PodTemplate" || m.OwnerReferences[0].UID != p.UID ||
			m.OwnerReferences[0].Controller != nil {
			t.Fatalf("member %s must be owned, not controlled, by the pool: %+v", m.Name, m.OwnerReferences)
		}
		// The pool's TTL and idle timeout are for claims, never for waiting.
		if m.Spec.ActiveDeadlineSeconds != nil || m.Spec.Containers[0].Command[4] != "0" {
			t.Fatalf("a warm member has a deadline or idle timeout: %v %v", m.Spec.ActiveDeadlineSeconds, m.Spec.Containers[0].Command)
		}
		want := coldPod.Spec.DeepCopy()
		got := m.Spec.DeepCopy()
		got.SchedulingGates, want.SchedulingGates = nil, nil
		if !equalJSON(t, got, want) {
			t.Fatalf("member spec differs from a cold sandbox's:\n%s\n%s", mustJSON(t, got), mustJSON(t, want))
		}
		if v := fakecluster.RestrictedViolations(t, &m); v != "" {
			t.Fatalf("Pod Security restricted refuses member %s: %s", m.Name, v)
		}
		np, err := cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), m.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("member %s has no NetworkPolicy: %v", m.Name, err)
		}
		if np.Spec.PodSelector.MatchLabels[LabelFence] != m.Labels[LabelFence] || m.Labels[LabelFence] == "" {
			t.Fatalf("member %s's policy does not select it by its fence label: %v", m.Name, np.Spec.PodSelector)
		}
	}
	// A cold sandbox's policy never selects a claimed Pod of the same name.
	rec := &execRecorder{}
	a, err := Acquire(context.Background(), cs, claimSpec("cold"), AcquireOptions{Pool: "warm", Exec: rec.execFor(t)})
	if err != nil {
		t.Fatal(err)
	}
	sel, _ := metav1.LabelSelectorAsSelector(&cold.NetworkPolicy().Spec.PodSelector)
	if sel.Matches(labels.Set(a.Pod.Labels)) {
		t.Fatal("a cold sandbox's policy would select the claimed sandbox of the same name")
	}
	if !sel.Matches(labels.Set(coldPod.Labels)) {
		t.Fatal("a cold sandbox's policy does not select its own pod")
	}
	// The pool's idle timeout started with the claim.
	if len(rec.urls) != 1 || !slices.Equal(rec.urls[0].Query()["command"], deliverCommand("", 60)) {
		t.Fatalf("the claim did not set the pool's idle timeout: %v", rec.urls)
	}
}

// The PodTemplate stores what members are; the definition reads back.
func TestPoolDefinitionRoundTrips(t *testing.T) {
	spec := sandbox.NewSpec("x", "ns")
	spec.Image = "node:22"
	spec.Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
	spec.Labels = map[string]string{"team": "ml"}
	spec.TTL = 2 * time.Hour
	p, err := NewPool("agents", spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := p.PodTemplate()
	if tmpl.Name != "agentkernel-pool-agents" || tmpl.Template.Spec.Containers[0].Image != "node:22" || tmpl.Template.Labels[sandbox.LabelPool] != "agents" {
		t.Fatalf("template %s: %v", tmpl.Name, tmpl.Template)
	}
	if _, ok := tmpl.Template.Labels[LabelFence]; ok {
		t.Fatal("the template carries one member's fence")
	}
	back, err := PoolFromTemplate(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if back.Size != 3 || back.Spec.Image != "node:22" || back.Spec.TTL != 2*time.Hour || back.Spec.Labels["team"] != "ml" || back.Spec.Env[0].Value != "b" {
		t.Fatalf("read back %+v", back)
	}
	tmpl.Labels[sandbox.LabelManagedBy] = "someone"
	var notPool *NotAPoolError
	if _, err := PoolFromTemplate(tmpl); !errors.As(err, &notPool) {
		t.Fatalf("a foreign PodTemplate: %v", err)
	}
}

// Reconcile replaces members that ended, trims extras (not-ready first,
// and never one that was claimed meanwhile), and tops up.
func TestReconcile(t *testing.T) {
	cs, tr := poolCluster(t)
	p := newTestPool(t, cs, tr, "warm", 3, nil)
	gvr := corev1.SchemeGroupVersion.WithResource("pods")
	members := podsIn(t, cs, "ns")
	dead := members[0]
	dead.Status.Phase = corev1.PodFailed
	dead.ResourceVersion = ""
	if err := tr.Update(gvr, &dead, "ns"); err != nil {
		t.Fatal(err)
	}
	st, err := Reconcile(context.Background(), cs, p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Removed != 1 || st.Created != 1 || st.Ready != 2 || st.Starting != 1 {
		t.Fatalf("after a member died: %+v", st)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(context.Background(), dead.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("the dead member is still there")
	}
	// Scale down to 1: the starting one goes first, then the youngest ready.
	p.Size = 1
	st, err = Reconcile(context.Background(), cs, p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Removed != 2 || st.Ready != 1 || st.Starting != 0 {
		t.Fatalf("after scaling to 1: %+v", st)
	}
	// A member claimed between the reconcile's list and its delete is left alone.
	p.Size = 0
	cs.PrependReactor("delete", "pods", claimFirst(t, tr))
	st, err = Reconcile(context.Background(), cs, p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Removed != 0 {
		t.Fatalf("reconcile deleted a member claimed meanwhile: %+v", st)
	}
	left := podsIn(t, cs, "ns")
	if len(left) != 1 || left[0].Labels[sandbox.LabelSandbox] != "sneaky" {
		t.Fatalf("left %v", left)
	}
}

// claimFirst is a reactor that claims a pod just before its delete arrives.
func claimFirst(t *testing.T, tr *rvTracker) func(a k8stesting.Action) (bool, runtime.Object, error) {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj, err := tr.Get(a.GetResource(), a.GetNamespace(), a.(k8stesting.DeleteActionImpl).GetName())
		if err != nil {
			return false, nil, nil
		}
		pod := obj.(*corev1.Pod)
		if pod.Labels[sandbox.LabelSandbox] == "" {
			pod.Labels[sandbox.LabelSandbox] = "sneaky"
			pod.OwnerReferences = nil
			if err := tr.Update(a.GetResource(), pod, a.GetNamespace()); err != nil {
				t.Fatal(err)
			}
		}
		return false, nil, nil
	}
}

// pool create fails fast, with the cluster's reason, when members cannot
// start, and leaves nothing behind; a name taken is refused.
func TestCreatePoolFailsFastAndCleansUp(t *testing.T) {
	cs, tr := poolCluster(t)
	p, _ := NewPool("bad", sandbox.NewSpec("bad", "ns"), 2)
	// The scheduler's verdict, until pool create gives up.
	gvr := corev1.SchemeGroupVersion.WithResource("pods")
	err := untilFails(t, "pool create", func() error {
		_, err := CreatePool(context.Background(), cs, p, PoolOptions{Wait: true, Timeout: time.Minute})
		return err
	}, func() {
		for _, pod := range podsIn(t, cs, "ns") {
			if len(pod.Spec.SchedulingGates) > 0 {
				continue
			}
			pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/1 nodes are available"}}
			pod.ResourceVersion = ""
			_ = tr.Update(gvr, &pod, "ns") // gone already, once pool create cleans up
		}
	})
	if !strings.Contains(err.Error(), `pool "bad" in namespace "ns" cannot start its members: Unschedulable`) {
		t.Fatalf("err = %v", err)
	}
	if pods := podsIn(t, cs, "ns"); len(pods) != 0 {
		t.Fatalf("left %d pods", len(pods))
	}
	if ts, _ := cs.CoreV1().PodTemplates("ns").List(context.Background(), metav1.ListOptions{}); len(ts.Items) != 0 {
		t.Fatalf("left the pool's PodTemplate")
	}

	newTestPool(t, cs, tr, "taken", 1, nil)
	again, _ := NewPool("taken", sandbox.NewSpec("taken", "ns"), 1)
	var exists *PoolExistsError
	if _, err := CreatePool(context.Background(), cs, again, PoolOptions{}); !errors.As(err, &exists) || field.StepOf(err) != (field.Step{Hint: field.HintPoolExists, Name: "taken", Namespace: "ns"}) {
		t.Fatalf("name clash: %v", err)
	}
	if n := len(podsIn(t, cs, "ns")); n != 1 {
		t.Fatalf("a refused pool create changed the members: %d pods", n)
	}
}

// pool delete removes the definition and warm members, never a sandbox
// claimed from it.
func TestDeletePoolKeepsClaimedSandboxes(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 3, nil)
	a, err := Acquire(context.Background(), cs, claimSpec("keep"), AcquireOptions{Pool: "warm"})
	if err != nil {
		t.Fatal(err)
	}
	removed, kept, err := DeletePool(context.Background(), cs, "ns", "warm")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 || kept != 1 { // 2 warm + the claim's replacement
		t.Fatalf("removed %d, kept %d", len(removed), kept)
	}
	pods := podsIn(t, cs, "ns")
	if len(pods) != 1 || pods[0].UID != a.Pod.UID {
		t.Fatalf("left %v, want only the claimed sandbox", pods)
	}
	var nf *PoolNotFoundError
	if _, _, err := DeletePool(context.Background(), cs, "ns", "warm"); !errors.As(err, &nf) {
		t.Fatalf("second delete: %v", err)
	}
}

// A member whose status changes while it is being deleted (the scheduler,
// the kubelet) is still deleted: a conflict is not taken for a claim. A
// member a claim took meanwhile is left to its claim.
func TestDeletePoolRetriesMembersWrittenMeanwhile(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 3, nil)
	gvr := corev1.SchemeGroupVersion.WithResource("pods")
	var mu sync.Mutex
	written := map[string]bool{}
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.DeleteAction).GetName()
		mu.Lock()
		defer mu.Unlock()
		if written[name] {
			return false, nil, nil
		}
		written[name] = true
		obj, err := tr.Get(gvr, "ns", name)
		if err != nil {
			return false, nil, nil
		}
		pod := obj.(*corev1.Pod).DeepCopy()
		if len(written) == 1 {
			pod.Labels[sandbox.LabelSandbox] = "taken" // the first: a claim's write
		} else {
			pod.Status.Message = "written meanwhile" // the others: a status write
		}
		pod.ResourceVersion = ""
		if err := tr.Update(gvr, pod, "ns"); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewConflict(gvr.GroupResource(), name, errors.New("the object has been modified"))
	})
	removed, _, err := DeletePool(context.Background(), cs, "ns", "warm")
	if err != nil {
		t.Fatal(err)
	}
	left := podsIn(t, cs, "ns")
	if len(removed) != 2 || len(left) != 1 || left[0].Labels[sandbox.LabelSandbox] != "taken" {
		var names []string
		for _, p := range left {
			names = append(names, p.Name+" sandbox="+p.Labels[sandbox.LabelSandbox])
		}
		t.Fatalf("removed %d, left %v; want 2 removed, the claimed one left", len(removed), names)
	}
}

// A claim that races pool delete either gets its sandbox or creates one
// cold; a member the claimant made after the pool is gone is owned by the
// deleted pool, so the garbage collector removes it.
func TestClaimRacingPoolDelete(t *testing.T) {
	cs, tr := poolCluster(t)
	p := newTestPool(t, cs, tr, "warm", 1, nil)
	// The pool is deleted between the claim's list and its write: its
	// definition and (by pool delete or the garbage collector) its members.
	deleted := false
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if !deleted {
			deleted = true
			for _, del := range []struct{ resource, name string }{
				{"podtemplates", PoolTemplateName("warm")}, {"pods", a.(k8stesting.PatchActionImpl).GetName()},
			} {
				if err := tr.Delete(corev1.SchemeGroupVersion.WithResource(del.resource), "ns", del.name); err != nil {
					t.Fatal(err)
				}
			}
		}
		return false, nil, nil
	})
	_, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "warm"})
	var nf *PoolNotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("a claim whose pool was deleted under it: %v", err)
	}
	if pods := podsIn(t, cs, "ns"); len(pods) != 0 {
		t.Fatalf("left %d pods", len(pods))
	}
	// The other order: the claim lands, then the pool goes. The claimed
	// sandbox stays; its replacement names the deleted pool as owner.
	cs2, tr2 := poolCluster(t)
	p = newTestPool(t, cs2, tr2, "warm", 1, nil)
	a, err := Acquire(context.Background(), cs2, claimSpec("task"), AcquireOptions{Pool: "warm"})
	if err != nil || !a.Warm {
		t.Fatal(err)
	}
	if _, _, err := DeletePool(context.Background(), cs2, "ns", "warm"); err != nil {
		t.Fatal(err)
	}
	for _, pod := range podsIn(t, cs2, "ns") {
		if pod.UID != a.Pod.UID && !slices.ContainsFunc(pod.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == p.UID }) {
			t.Fatalf("pod %s outlives the pool without being its dependent: %v", pod.Name, pod.OwnerReferences)
		}
	}
	if _, err := cs2.CoreV1().Pods("ns").Get(context.Background(), a.Pod.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("the claimed sandbox was deleted with its pool: %v", err)
	}
}

func TestScalePool(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, nil)
	st, err := ScalePool(context.Background(), cs, "ns", "warm", 4, PoolOptions{})
	if err != nil || st.Pool.Size != 4 || st.Created != 3 {
		t.Fatalf("scale to 4: %+v %v", st, err)
	}
	p, _ := GetPool(context.Background(), cs, "ns", "warm")
	if p.Size != 4 {
		t.Fatalf("stored size %d", p.Size)
	}
	if _, err := ScalePool(context.Background(), cs, "ns", "warm", -1, PoolOptions{}); err == nil {
		t.Fatal("negative size accepted")
	}
	var nf *PoolNotFoundError
	if _, err := ScalePool(context.Background(), cs, "ns", "nope", 1, PoolOptions{}); !errors.As(err, &nf) {
		t.Fatalf("scale of a missing pool: %v", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func equalJSON(t *testing.T, a, b any) bool { return mustJSON(t, a) == mustJSON(t, b) }
