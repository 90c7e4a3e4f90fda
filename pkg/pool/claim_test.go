package pool

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

func claimSpec(name string) *sandbox.Spec {
	s := sandbox.NewSpec(name, "ns")
	return &s
}

func patchesOf(cs *fake.Clientset, resource string) []k8stesting.PatchActionImpl {
	var out []k8stesting.PatchActionImpl
	for _, a := range cs.Actions() {
		if p, ok := a.(k8stesting.PatchActionImpl); ok && p.GetResource().Resource == resource {
			out = append(out, p)
		}
	}
	return out
}

// A claim is one merge patch carrying the member's resourceVersion; it
// makes the member a sandbox indistinguishable from a cold one for every
// command (Ours, Find, List), and the claimant makes its replacement.
func TestClaimTakesAReadyMemberInOneWrite(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 3, nil)
	before := podsIn(t, cs, "ns")
	cs.ClearActions()

	a, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "warm"})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Warm || a.Why != "" {
		t.Fatalf("not claimed warm: %+v", a)
	}
	claims := 0
	for _, p := range patchesOf(cs, "pods") {
		if p.GetPatchType() != types.MergePatchType {
			continue // the replacement's ungate
		}
		claims++
		var patch struct {
			Metadata struct {
				ResourceVersion string            `json:"resourceVersion"`
				Labels          map[string]string `json:"labels"`
				OwnerReferences *[]any            `json:"ownerReferences"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(p.GetPatch(), &patch); err != nil {
			t.Fatal(err)
		}
		if patch.Metadata.ResourceVersion == "" || patch.Metadata.Labels[sandbox.LabelSandbox] != "task" || !strings.Contains(string(p.GetPatch()), `"ownerReferences":null`) {
			t.Fatalf("the claim patch lacks its precondition, name or release from the pool: %s", p.GetPatch())
		}
	}
	if claims != 1 {
		t.Fatalf("%d claim writes, want 1", claims)
	}
	if !slices.ContainsFunc(before, func(p corev1.Pod) bool { return p.UID == a.Pod.UID }) {
		t.Fatalf("claimed pod %s was not one of the warm members", a.Pod.Name)
	}
	if err := sandbox.Ours(a.Pod, "task"); err != nil {
		t.Fatalf("a claimed sandbox must pass Ours: %v", err)
	}
	if len(a.Pod.OwnerReferences) != 0 {
		t.Fatalf("claimed sandbox still owned: %v", a.Pod.OwnerReferences)
	}
	found, err := sandbox.Find(context.Background(), cs, "ns", "task")
	if err != nil || found.UID != a.Pod.UID {
		t.Fatalf("Find(task) = %v, %v", found, err)
	}
	listed, err := sandbox.List(context.Background(), cs, "ns", "")
	if err != nil || len(listed) != 1 || listed[0].UID != a.Pod.UID {
		t.Fatalf("List = %v, %v: want only the claimed sandbox (warm members are not sandboxes)", listed, err)
	}
	// The replacement: a new member, owned by the pool, fenced.
	p, _ := GetPool(context.Background(), cs, "ns", "warm")
	st, err := PoolStatuses(context.Background(), cs, []*Pool{p})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Members() != 3 || st[0].Claimed != 1 {
		t.Fatalf("after one claim: %d members, %d claimed; want 3 and 1", st[0].Members(), st[0].Claimed)
	}
	// Its NetworkPolicy still selects it, by the label the claim left alone.
	np, err := cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), a.Pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the claimed sandbox's NetworkPolicy: %v", err)
	}
	sel, _ := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if !sel.Matches(labels.Set(a.Pod.Labels)) || np.OwnerReferences[0].UID != a.Pod.UID {
		t.Fatalf("the policy does not select or is not owned by the claimed pod: %v / %v", np.Spec.PodSelector, np.OwnerReferences)
	}
}

// Of two claims racing for one member exactly one wins: the loser gets a
// Conflict and takes the next member; with none left, it creates cold.
func TestClaimConflictTriesTheNextMemberThenCold(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 2, nil)
	// Before each of our claim writes lands, a rival claims that same
	// member (the write our precondition then fails against).
	var rivals []string
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchActionImpl)
		if pa.GetPatchType() != types.MergePatchType {
			return false, nil, nil
		}
		obj, err := tr.Get(pa.GetResource(), "ns", pa.GetName())
		if err != nil {
			return false, nil, nil
		}
		p := obj.(*corev1.Pod)
		if p.Labels[sandbox.LabelSandbox] == "" {
			p.Labels[sandbox.LabelSandbox] = fmt.Sprintf("rival-%d", len(rivals))
			rivals = append(rivals, p.Name)
			if err := tr.Update(pa.GetResource(), p, "ns"); err != nil {
				t.Fatal(err)
			}
		}
		return false, nil, nil
	})
	a, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "warm"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rivals) != 2 {
		t.Fatalf("the claim tried %d members, want both: %v", len(rivals), rivals)
	}
	if a.Warm || !strings.Contains(a.Why, `pool "warm" has no ready member`) || a.Pod.Name != "agentkernel-task" {
		t.Fatalf("want a cold create after losing every member, got warm=%v why=%q pod=%s", a.Warm, a.Why, a.Pod.Name)
	}
	for i, name := range rivals {
		p, err := cs.CoreV1().Pods("ns").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil || p.Labels[sandbox.LabelSandbox] != fmt.Sprintf("rival-%d", i) {
			t.Fatalf("member %s was claimed twice (label %q): %v", name, p.Labels[sandbox.LabelSandbox], err)
		}
	}
}

// The cold fallback is the pool's sandbox, not a default one, and says why.
func TestClaimColdFallbackUsesThePoolsDefinition(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "py", 1, func(s *sandbox.Spec) { s.Image = "python:3.12"; s.Env = []corev1.EnvVar{{Name: "POOL", Value: "py"}} })
	if _, err := Acquire(context.Background(), cs, claimSpec("first"), AcquireOptions{Pool: "py"}); err != nil {
		t.Fatal(err)
	}
	// The replacement has not started: no ready member.
	claim := claimSpec("second")
	claim.Env = []corev1.EnvVar{{Name: "MINE", Value: "1"}}
	claim.TTL = time.Hour
	a, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "py", CreateOptions: sandbox.CreateOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Warm || a.Why != `pool "py" has no ready member (1 starting)` {
		t.Fatalf("warm=%v why=%q", a.Warm, a.Why)
	}
	c := a.Pod.Spec.Containers[0]
	if c.Image != "python:3.12" || !slices.Contains(c.Env, corev1.EnvVar{Name: "POOL", Value: "py"}) || !slices.Contains(c.Env, corev1.EnvVar{Name: "MINE", Value: "1"}) {
		t.Fatalf("cold fallback is not the pool's sandbox with the claim's env: %s %v", c.Image, c.Env)
	}
	if a.Pod.Spec.ActiveDeadlineSeconds == nil || *a.Pod.Spec.ActiveDeadlineSeconds != 3600 {
		t.Fatalf("cold fallback lost the claim's TTL: %v", a.Pod.Spec.ActiveDeadlineSeconds)
	}
}

// A claim that insists on a shape the pool does not have is refused, and
// nothing is claimed; flags it does not name come from the pool.
func TestClaimRefusesAPoolOfAnotherShape(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "py", 2, func(s *sandbox.Spec) { s.Image = "python:3.12" })
	claim := claimSpec("task")
	claim.Image = "node:22"
	claim.Memory.Set(4 << 30)
	_, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "py", Match: []string{"image", "memory"}})
	if err == nil || !strings.Contains(err.Error(), `image: the pool has "python:3.12", the claim asks for "node:22"`) ||
		!strings.Contains(err.Error(), "; memory: the pool has 1Gi, the claim asks for 4Gi") {
		t.Fatalf("err = %v", err)
	}
	if len(patchesOf(cs, "pods")) != 2 { // the two ungates of pool create
		t.Fatalf("a refused claim wrote to a pod: %v", patchesOf(cs, "pods"))
	}
	// Without insisting, the pool's image it is.
	a, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "py"})
	if err != nil || a.Pod.Spec.Containers[0].Image != "python:3.12" {
		t.Fatalf("claim without --image: %v %v", a, err)
	}
	// Insisting on what the pool has is fine.
	claim2 := claimSpec("task2")
	claim2.Image = "python:3.12"
	if _, err := Acquire(context.Background(), cs, claim2, AcquireOptions{Pool: "py", Match: []string{"image"}}); err != nil {
		t.Fatal(err)
	}
}

func TestClaimOfAMissingPool(t *testing.T) {
	cs, _ := poolCluster(t)
	_, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "nope"})
	var nf *PoolNotFoundError
	if !errors.As(err, &nf) || field.StepOf(err) != (field.Step{Hint: field.HintListPools, Name: "nope", Namespace: "ns"}) {
		t.Fatalf("err = %v", err)
	}
	if len(podsIn(t, cs, "ns")) != 0 {
		t.Fatal("a claim of a missing pool created something")
	}
}

// Many goroutines claiming at once (the fake has the API server's
// optimistic concurrency): every member is claimed at most once, every
// claim gets a sandbox of its own.
func TestConcurrentClaimsNeverShareAMember(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 10, nil)
	members := map[types.UID]bool{}
	for _, p := range podsIn(t, cs, "ns") {
		members[p.UID] = true
	}
	const claims = 30
	var wg sync.WaitGroup
	got := make([]*Acquired, claims)
	errs := make([]error, claims)
	for i := range claims {
		wg.Go(func() {
			got[i], errs[i] = Acquire(context.Background(), cs, claimSpec(fmt.Sprintf("t%d", i)), AcquireOptions{Pool: "warm"})
		})
	}
	wg.Wait()
	pods := map[types.UID]string{}
	warm := 0
	for i := range claims {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if other, dup := pods[got[i].Pod.UID]; dup {
			t.Fatalf("pod %s given to t%d and %s", got[i].Pod.Name, i, other)
		}
		pods[got[i].Pod.UID] = fmt.Sprintf("t%d", i)
		if got[i].Warm {
			warm++
			if !members[got[i].Pod.UID] {
				t.Fatalf("t%d was given %s, which was not a ready member", i, got[i].Pod.Name)
			}
		}
	}
	if warm != 10 {
		t.Fatalf("%d claims were warm, want all 10 members", warm)
	}
	// Every pod's final sandbox label is the claim that got it.
	for _, p := range podsIn(t, cs, "ns") {
		if want, ok := pods[p.UID]; ok && p.Labels[sandbox.LabelSandbox] != want {
			t.Fatalf("pod %s is labelled %q but was given to %s", p.Name, p.Labels[sandbox.LabelSandbox], want)
		}
	}
}

// A claim whose name is held by another sandbox backs off: the member it
// took is removed (its replacement made), and the error says the name is taken.
func TestClaimBacksOffFromATakenName(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 2, nil)
	spec := sandbox.NewSpec("task", "ns")
	if _, err := sandbox.Create(context.Background(), cs, &spec, sandbox.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "warm"})
	var exists *sandbox.AlreadyExistsError
	if !errors.As(err, &exists) {
		t.Fatalf("err = %v", err)
	}
	n := 0
	for _, p := range podsIn(t, cs, "ns") {
		if p.Labels[sandbox.LabelSandbox] == "task" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d pods hold the name task, want the cold one only", n)
	}
	p, _ := GetPool(context.Background(), cs, "ns", "warm")
	st, _ := PoolStatuses(context.Background(), cs, []*Pool{p})
	if st[0].Members() != 2 {
		t.Fatalf("the pool has %d members after a backed-off claim, want 2", st[0].Members())
	}
}

// A suspended persistent sandbox (a workspace, no Pod) holds its name
// against claims too: the claim backs off and the workspace stays.
func TestClaimBacksOffFromASuspendedSandbox(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 2, nil)
	spec := sandbox.NewSpec("task", "ns")
	spec.Workspace = &sandbox.Workspace{Size: resource.MustParse("1Gi")}
	if _, err := sandbox.Create(context.Background(), cs, &spec, sandbox.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sandbox.Suspend(context.Background(), cs, "ns", "task", sandbox.SuspendOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "warm"})
	var exists *sandbox.AlreadyExistsError
	if !errors.As(err, &exists) {
		t.Fatalf("err = %v, want AlreadyExistsError", err)
	}
	for _, p := range podsIn(t, cs, "ns") {
		if p.Labels[sandbox.LabelSandbox] == "task" {
			t.Fatalf("pod %s holds the name of the suspended sandbox", p.Name)
		}
	}
	if _, err := sandbox.FindWorkspace(context.Background(), cs, "ns", "task"); err != nil {
		t.Fatalf("the suspended sandbox's workspace: %v", err)
	}
}

// The claim's secrets and environment reach the sandbox over exec stdin:
// never in a Pod spec, a patch, an event or an exec request; every later
// exec sources them.
func TestClaimDeliversSecretsOverStdinOnly(t *testing.T) {
	const secret = "s3cr3t-'$(touch /tmp/pwned)'-value"
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, nil)
	rec := &execRecorder{}
	claim := claimSpec("task")
	claim.SecretEnvNames = []string{"API_KEY"}
	claim.Env = []corev1.EnvVar{{Name: "MODE", Value: "review"}}
	claim.IdleTimeout = 90 * time.Second
	a, err := Acquire(context.Background(), cs, claim, AcquireOptions{
		Pool: "warm", Exec: rec.execFor(t),
		CreateOptions: sandbox.CreateOptions{SecretValues: map[string]string{"API_KEY": secret}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Warm {
		t.Fatalf("cold: %s", a.Why)
	}
	// One exec: the delivery, its content on stdin.
	if len(rec.urls) != 1 {
		t.Fatalf("%d execs, want 1", len(rec.urls))
	}
	q := rec.urls[0].Query()
	file := sandbox.EnvFilePath(a.Pod.Name)
	if want := deliverCommand(file, 90); !slices.Equal(q["command"], want) {
		t.Fatalf("delivery command %q, want %q", q["command"], want)
	}
	if q.Get("stdin") != "true" || !strings.Contains(rec.stdins[0], "export API_KEY=") || !strings.Contains(rec.stdins[0], "export MODE='review'") {
		t.Fatalf("delivery stdin %q", rec.stdins[0])
	}
	if a.Pod.Annotations[sandbox.AnnotationEnvFile] != file || a.Pod.Annotations[sandbox.AnnotationIdleTimeout] != "1m30s" {
		t.Fatalf("annotations %v", a.Pod.Annotations)
	}
	// The Secret: owned by the Pod (delete removes it), holding the value.
	if a.Secret == nil || a.Secret.OwnerReferences[0].UID != a.Pod.UID || string(a.Secret.Data["API_KEY"]) != secret {
		t.Fatalf("claim secret %+v", a.Secret)
	}

	// Later execs source the file; their requests hold no value either.
	ex := rec.execFor(t)(a.Pod)
	if err := ex.Run(context.Background(), sandbox.ExecCommand([]string{"env"}, []string{"X=1"}, "/workspace"), nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	later := rec.urls[1].Query()["command"]
	if !slices.Equal(later[:4], sandbox.WithEnvFile(file, nil)) || !slices.Equal(later[4:6], []string{"env", "X=1"}) {
		t.Fatalf("later exec does not source the env file first: %q", later)
	}

	assertValueNowhere(t, cs, rec, secret)
}

// assertValueNowhere greps every object and patch sent to the fake API
// server but the claim's own Secret, and every exec request, for value —
// raw and base64-encoded.
func assertValueNowhere(t *testing.T, cs *fake.Clientset, rec *execRecorder, value string) {
	t.Helper()
	needles := []string{value, base64.StdEncoding.EncodeToString([]byte(value)), "s3cr3t"}
	check := func(what, text string) {
		for _, n := range needles {
			if strings.Contains(text, n) {
				t.Errorf("the secret is in %s: %s", what, text)
			}
		}
	}
	for _, a := range cs.Actions() {
		switch a := a.(type) {
		case k8stesting.CreateActionImpl:
			if _, isSecret := a.GetObject().(*corev1.Secret); isSecret {
				continue
			}
			b, _ := json.Marshal(a.GetObject())
			check(a.GetResource().Resource+" create", string(b))
		case k8stesting.PatchActionImpl:
			check(a.GetResource().Resource+" patch", string(a.GetPatch()))
		case k8stesting.UpdateActionImpl:
			b, _ := json.Marshal(a.GetObject())
			check(a.GetResource().Resource+" update", string(b))
		}
	}
	for _, p := range podsIn(t, cs, "ns") {
		b, _ := json.Marshal(p)
		check("pod "+p.Name, string(b))
	}
	events, _ := cs.CoreV1().Events("ns").List(context.Background(), metav1.ListOptions{})
	for _, e := range events.Items {
		check("event "+e.Name, e.Message)
	}
	for _, u := range rec.urls {
		check("exec request", u.String())
	}
}

// A delivery that fails leaves no claimed sandbox behind (its secrets may be
// half in), and the pool keeps its size.
func TestClaimWhoseDeliveryFailsRemovesTheSandbox(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, nil)
	rec := &execRecorder{err: errors.New("pods/exec is forbidden")}
	claim := claimSpec("task")
	claim.Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
	_, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "warm", Exec: rec.execFor(t)})
	if err == nil || !strings.Contains(err.Error(), "pods/exec is forbidden") {
		t.Fatalf("err = %v", err)
	}
	for _, p := range podsIn(t, cs, "ns") {
		if p.Labels[sandbox.LabelSandbox] != "" {
			t.Fatalf("the failed claim left sandbox pod %s", p.Name)
		}
	}
	if n := len(podsIn(t, cs, "ns")); n != 1 {
		t.Fatalf("%d pods, want the replacement member only", n)
	}
}

// Ctrl-C while the claim's write is in flight: whether or not it landed,
// nothing stays claimed.
func TestInterruptedClaimWriteIsUndone(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	// The write lands, then the client is interrupted before the answer.
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchActionImpl)
		if pa.GetPatchType() != types.MergePatchType {
			return false, nil, nil
		}
		_, _, _ = k8stesting.ObjectReaction(tr)(a)
		cancel(errors.New("interrupted by Ctrl-C"))
		return true, nil, context.Canceled
	})
	_, err := Acquire(ctx, cs, claimSpec("task"), AcquireOptions{Pool: "warm"})
	if err == nil || !strings.Contains(err.Error(), "interrupted by Ctrl-C") {
		t.Fatalf("err = %v", err)
	}
	for _, p := range podsIn(t, cs, "ns") {
		if p.Labels[sandbox.LabelSandbox] != "" {
			t.Fatalf("the interrupted claim left sandbox pod %s", p.Name)
		}
	}
	if n := len(podsIn(t, cs, "ns")); n != 1 {
		t.Fatalf("%d pods, want one member (the replacement of the undone claim)", n)
	}
}

// A TTL given at claim time counts from now, although the kubelet counts
// from the Pod's start: the time the member waited warm is added.
func TestClaimDeadlineCountsFromTheClaim(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	member := &corev1.Pod{Status: corev1.PodStatus{StartTime: &metav1.Time{Time: start}}}
	now := start.Add(10 * time.Minute)
	if d := claimDeadline(member, time.Hour, now); d == nil || *d != 4200 {
		t.Fatalf("deadline %v, want 4200 (10 min warm + 1 h)", d)
	}
	member.Spec.ActiveDeadlineSeconds = ptr.To[int64](600)
	if d := claimDeadline(member, time.Hour, now); d != nil {
		t.Fatalf("a running pod refuses a later deadline than it has: %v", *d)
	}
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, nil)
	claim := claimSpec("task")
	claim.TTL = 30 * time.Minute
	a, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "warm"})
	if err != nil {
		t.Fatal(err)
	}
	d := a.Pod.Spec.ActiveDeadlineSeconds
	if d == nil || *d < 1860 || *d > 1870 || a.Pod.Annotations[sandbox.AnnotationTTL] != "30m0s" {
		t.Fatalf("deadline %v (member started a minute ago), ttl annotation %q", d, a.Pod.Annotations[sandbox.AnnotationTTL])
	}
	at, ok := sandbox.ExpiresAt(a.Pod, time.Now())
	if !ok || time.Until(at) < 29*time.Minute || time.Until(at) > 31*time.Minute {
		t.Fatalf("ExpiresAt = %v, %v", at, ok)
	}
}

// --pool-wait: no member ready, the claim waits and takes the first that
// becomes ready.
func TestClaimWaitsForAMember(t *testing.T) {
	cs, tr := poolCluster(t)
	spec := sandbox.NewSpec("warm", "ns")
	p, err := NewPool("warm", spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreatePool(context.Background(), cs, p, PoolOptions{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var a *Acquired
	go func() {
		defer close(done)
		a, err = Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "warm", WaitForMember: true, CreateOptions: sandbox.CreateOptions{Timeout: time.Minute}})
	}()
	// The node starts the member (again and again: a fake watch has no
	// history, so a start written between its list and its watch would be
	// lost) until the claim took it.
	gvr := corev1.SchemeGroupVersion.WithResource("pods")
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(50 * time.Millisecond):
			for _, pod := range podsIn(t, cs, "ns") {
				if len(pod.Spec.SchedulingGates) == 0 && pod.Labels[sandbox.LabelSandbox] == "" {
					pod.Status, pod.ResourceVersion = runningStatus(), ""
					_ = tr.Update(gvr, &pod, "ns")
				}
			}
		}
	}
	if err != nil || !a.Warm {
		t.Fatalf("waited claim: %v %+v", err, a)
	}
}

// A member that cannot start fails a waiting claim at once, with the reason.
func TestClaimWaitFailsFastOnAMemberThatCannotStart(t *testing.T) {
	cs, tr := poolCluster(t)
	p, _ := NewPool("bad", sandbox.NewSpec("bad", "ns"), 1)
	if _, err := CreatePool(context.Background(), cs, p, PoolOptions{}); err != nil {
		t.Fatal(err)
	}
	gvr := corev1.SchemeGroupVersion.WithResource("pods")
	for _, pod := range podsIn(t, cs, "ns") {
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: sandbox.ContainerName, State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "docker.io/library/nope:1: not found"}}}}
		pod.ResourceVersion = ""
		if err := tr.Update(gvr, &pod, "ns"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "bad", WaitForMember: true, CreateOptions: sandbox.CreateOptions{Timeout: time.Minute}})
	if err == nil || !strings.Contains(err.Error(), `pool "bad" in namespace "ns" cannot start its members: ErrImagePull`) {
		t.Fatalf("err = %v", err)
	}
	// Without waiting, the claim says why it went cold.
	st, _ := PoolStatuses(context.Background(), cs, []*Pool{p})
	if len(st[0].Problems) != 1 || !strings.Contains(st[0].Problems[0], "ErrImagePull: docker.io/library/nope:1: not found") {
		t.Fatalf("problems %v", st[0].Problems)
	}
}

// The claimed Secret and policy are found by their owner, and the policy
// outlives the claim unchanged.
func TestClaimKeepsTheMembersPolicyUnchanged(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, nil)
	nps, _ := cs.NetworkingV1().NetworkPolicies("ns").List(context.Background(), metav1.ListOptions{})
	if len(nps.Items) != 1 {
		t.Fatalf("%d policies", len(nps.Items))
	}
	before := nps.Items[0]
	a, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "warm"})
	if err != nil {
		t.Fatal(err)
	}
	after, err := cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), a.Pod.Name, metav1.GetOptions{})
	if err != nil || after.ResourceVersion != before.ResourceVersion || after.UID != before.UID {
		t.Fatalf("the member's policy changed across the claim: %v %v", after, err)
	}
}

// RefillInBackground hands the sandbox over before its replacement exists:
// a replacement that cannot be made does not fail the claim, WaitRefill
// says why; without it, the same claim waits and keeps the error for
// WaitRefill too.
func TestClaimRefillsInTheBackground(t *testing.T) {
	for _, background := range []bool{true, false} {
		cs, tr := poolCluster(t)
		p := newTestPool(t, cs, tr, "warm", 2, nil)
		cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("quota exceeded"))
		})
		a, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "warm", RefillInBackground: background})
		if err != nil || !a.Warm {
			t.Fatalf("background=%v: claim: %v %+v", background, err, a)
		}
		if err := a.WaitRefill(); err == nil || !strings.Contains(err.Error(), `refilling pool "warm"`) || !strings.Contains(err.Error(), "quota exceeded") {
			t.Fatalf("background=%v: WaitRefill = %v", background, err)
		}
		if err := a.WaitRefill(); err == nil {
			t.Fatal("WaitRefill forgot its error")
		}
		st, _ := PoolStatuses(context.Background(), cs, []*Pool{p})
		if st[0].Members() != 1 || st[0].Claimed != 1 {
			t.Fatalf("background=%v: %d members, %d claimed", background, st[0].Members(), st[0].Claimed)
		}
	}
}

// A claim that brings an agent preset insists on a pool made for it: the
// preset's credentials and install step belong in that agent's image.
func TestClaimInsistsOnThePoolsAgent(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "plain", 1, nil)
	newTestPool(t, cs, tr, "claude", 1, func(s *sandbox.Spec) { s.Agent = "claude" })
	claim := claimSpec("task")
	claim.Agent = "claude"
	_, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "plain", Match: []string{"agent"}})
	if err == nil || !strings.Contains(err.Error(), `agent: the pool has none, the claim asks for "claude"`) {
		t.Fatalf("err = %v", err)
	}
	a, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "claude", Match: []string{"agent"}})
	if err != nil || !a.Warm || a.Spec.Agent != "claude" {
		t.Fatalf("claim of the agent's pool: %+v %v", a, err)
	}
}

// Admit sees the sandbox before anything is taken or made, on the warm
// path and on the cold one, and its refusal leaves the pool as it was.
func TestClaimAdmitRefusesBeforeAnyWrite(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "open", 1, func(s *sandbox.Spec) { s.Network = sandbox.NetworkOpen })
	newTestPool(t, cs, tr, "empty", 1, func(s *sandbox.Spec) { s.Network = sandbox.NetworkOpen })
	for _, p := range podsIn(t, cs, "ns") { // no member: the claim would be cold
		if p.Labels[sandbox.LabelPool] == "empty" {
			if err := cs.CoreV1().Pods("ns").Delete(context.Background(), p.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := podsIn(t, cs, "ns")
	var seen []sandbox.Network
	admit := func(s *sandbox.Spec) error {
		seen = append(seen, s.Network)
		if s.Network == sandbox.NetworkOpen {
			return errors.New("network open is too open")
		}
		return nil
	}
	for _, pool := range []string{"open", "empty"} {
		cs.ClearActions()
		_, err := Acquire(context.Background(), cs, claimSpec("task-"+pool), AcquireOptions{Pool: pool, Admit: admit})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf(`pool %q in namespace "ns": network open is too open`, pool)) {
			t.Fatalf("pool %s: err = %v", pool, err)
		}
		for _, a := range cs.Actions() {
			if v := a.GetVerb(); v != "get" && v != "list" {
				t.Fatalf("pool %s: a refused claim wrote: %v", pool, a)
			}
		}
	}
	if len(seen) != 2 {
		t.Fatalf("admit saw %v, want the warm and the cold sandbox", seen)
	}
	if after := podsIn(t, cs, "ns"); len(after) != len(before) {
		t.Fatalf("pods %d → %d", len(before), len(after))
	}
}
