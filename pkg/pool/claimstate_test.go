package pool

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// halfClaim leaves what a claimant killed (SIGKILL) right after its one
// write leaves: a member of pool "warm" (size members) made sandbox
// "task", written at, its environment never delivered.
func halfClaim(t *testing.T, size int, at time.Time) (*fake.Clientset, *rvTracker, *corev1.Pod) {
	t.Helper()
	cs, tr := poolCluster(t)
	p := newTestPool(t, cs, tr, "warm", size, nil)
	member := podsIn(t, cs, "ns")[0]
	claim := claimSpec("task")
	claim.SecretEnvNames = []string{"TOKEN"}
	s, err := claimedSpec("warm", &p.Spec, claim, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDelivery(&member, s, claim, map[string]string{"TOKEN": "s3cr3t"})
	if err != nil {
		t.Fatal(err)
	}
	patch, err := claimPatch(&member, s, claim, d, "killed-claim", at)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().Pods("ns").Patch(context.Background(), member.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cs, tr, got
}

// A sandbox whose claim died half-way runs nobody's command: an exec in it
// is refused, before any request, with one line that says what happened
// and what to do — from the cluster's state alone.
func TestHalfClaimedSandboxRefusesExec(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   time.Time
		want []string
	}{
		{"past the grace period", time.Now().Add(-time.Minute),
			[]string{`sandbox "task"`, `pool "warm"`, "never finished", "lacks the environment and secrets"}},
		{"within the grace period", time.Now(),
			[]string{`sandbox "task"`, "still being claimed", "try again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, _, _ := halfClaim(t, 1, tc.at)
			pod, err := sandbox.Find(context.Background(), cs, "ns", "task")
			if err != nil {
				t.Fatal(err)
			}
			rec := &execRecorder{}
			err = rec.execFor(t)(pod).Run(context.Background(), []string{"sh", "-c", `test -n "$TOKEN"`}, nil, nil, nil)
			if len(rec.urls) != 0 {
				t.Fatalf("a command ran in a half-claimed sandbox: %v", rec.urls)
			}
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if stale := tc.name == "past the grace period"; stale != (field.StepOf(err) == field.Step{Hint: field.HintReclaim, Name: "task", Namespace: "ns", Pool: "warm"}) {
				t.Errorf("stale %v, next step %+v", stale, field.StepOf(err))
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the refusal lacks %q: %s", w, msg)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("the refusal is more than one line: %q", msg)
			}
		})
	}
}

// gc removes a sandbox whose claim died, once the grace period is past —
// not one whose claim may still be on its way.
func TestGCRemovesHalfClaimedSandboxPastTheGrace(t *testing.T) {
	ctx := context.Background()
	cs, _, _ := halfClaim(t, 1, time.Now())
	if g, err := FindGarbage(ctx, cs, "ns"); err != nil || len(g) != 0 {
		t.Fatalf("gc would delete a claim still within its grace: %+v, %v", g, err)
	}
	cs, _, stale := halfClaim(t, 1, time.Now().Add(-time.Minute))
	g, err := FindGarbage(ctx, cs, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != 1 || g[0].Kind != "sandbox" || g[0].Name != "task" || !strings.Contains(g[0].Why, "never finished") {
		t.Fatalf("garbage %+v, want the half-claimed sandbox task", g)
	}
	if err := g[0].Delete(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(ctx, stale.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("gc did not remove the half-claimed sandbox")
	}
}

// gc's delete misses a sandbox whose claim was finished after gc looked.
func TestGCLeavesAClaimFinishedMeanwhile(t *testing.T) {
	ctx := context.Background()
	cs, _, stale := halfClaim(t, 1, time.Now().Add(-time.Minute))
	g, err := FindGarbage(ctx, cs, "ns")
	if err != nil || len(g) != 1 {
		t.Fatalf("%+v, %v", g, err)
	}
	if _, err := completeClaim(ctx, cs, stale, "killed-claim"); err != nil {
		t.Fatal(err)
	}
	if err := g[0].Delete(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(ctx, stale.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("gc removed a sandbox whose claim had finished: %v", err)
	}
}

// Claiming the name again from the same pool replaces a sandbox whose claim
// died: the new claim gets a whole sandbox with its secret, and commands
// run in it.
func TestRepeatedClaimReplacesAHalfClaimedSandbox(t *testing.T) {
	ctx := context.Background()
	cs, tr, stale := halfClaim(t, 2, time.Now().Add(-time.Minute))
	runPods(t, tr, "ns")
	rec := &execRecorder{}
	claim := claimSpec("task")
	claim.SecretEnvNames = []string{"TOKEN"}
	a, err := Acquire(ctx, cs, claim, AcquireOptions{Pool: "warm", Exec: rec.execFor(t),
		CreateOptions: sandbox.CreateOptions{SecretValues: map[string]string{"TOKEN": "s3cr3t"}}})
	if err != nil {
		t.Fatalf("claiming the name of a half-claimed sandbox again: %v", err)
	}
	if a.Pod.UID == stale.UID {
		t.Fatal("the half-claimed pod was kept")
	}
	if _, err := cs.CoreV1().Pods("ns").Get(ctx, stale.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("the half-claimed pod is still there")
	}
	if a.Pod.Annotations[sandbox.AnnotationClaimState] != sandbox.ClaimComplete {
		t.Fatalf("the new claim is not complete: %v", a.Pod.Annotations)
	}
	pod, err := sandbox.Find(ctx, cs, "ns", "task")
	if err != nil || pod.UID != a.Pod.UID {
		t.Fatalf("Find = %v, %v", pod, err)
	}
	n := len(rec.urls)
	if err := rec.execFor(t)(pod).Run(ctx, []string{"true"}, nil, nil, nil); err != nil || len(rec.urls) != n+1 {
		t.Fatalf("a command in the whole sandbox: %v (%d execs)", err, len(rec.urls)-n)
	}
}

// A claim of the name that finds another claim of it still on its way
// waits for it rather than replacing it; once that one finishes, the name
// is taken and the new claim backs off as from any sandbox.
func TestRepeatedClaimWaitsForAClaimOnItsWay(t *testing.T) {
	ctx := context.Background()
	cs, tr, fresh := halfClaim(t, 2, time.Now())
	runPods(t, tr, "ns")
	go func() {
		time.Sleep(700 * time.Millisecond)
		_, _ = completeClaim(ctx, cs, fresh, "killed-claim")
	}()
	claim := claimSpec("task")
	_, err := Acquire(ctx, cs, claim, AcquireOptions{Pool: "warm"})
	if err == nil || !strings.Contains(err.Error(), "task") {
		t.Fatalf("err = %v, want the name taken", err)
	}
	if _, gerr := cs.CoreV1().Pods("ns").Get(ctx, fresh.Name, metav1.GetOptions{}); gerr != nil {
		t.Fatalf("the claim on its way was replaced: %v", gerr)
	}
}

// A claim that delivers an environment says so in its one write, and marks
// itself complete after the delivery; one with nothing to deliver is whole
// with its write and carries no state.
func TestClaimStateAnnotations(t *testing.T) {
	ctx := context.Background()
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 2, nil)
	rec := &execRecorder{}
	claim := claimSpec("task")
	claim.Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
	a, err := Acquire(ctx, cs, claim, AcquireOptions{Pool: "warm", Exec: rec.execFor(t)})
	if err != nil {
		t.Fatal(err)
	}
	first := patchesOf(cs, "pods")
	var sawPending bool
	for _, p := range first {
		if strings.Contains(string(p.GetPatch()), `"`+sandbox.AnnotationClaimState+`":"pending"`) && strings.Contains(string(p.GetPatch()), sandbox.AnnotationClaimedAt) {
			sawPending = true
		}
	}
	if !sawPending || a.Pod.Annotations[sandbox.AnnotationClaimState] != sandbox.ClaimComplete {
		t.Fatalf("pending in the claim's write: %v; state now %q", sawPending, a.Pod.Annotations[sandbox.AnnotationClaimState])
	}
	b, err := Acquire(ctx, cs, claimSpec("plain"), AcquireOptions{Pool: "warm"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Pod.Annotations[sandbox.AnnotationClaimState]; ok {
		t.Fatalf("a claim with nothing to deliver carries a state: %v", b.Pod.Annotations)
	}
}
