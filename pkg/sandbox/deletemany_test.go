package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/clientrate"
)

// manyPods are n sandbox Pods in namespace ns, named s0, s1, ….
func manyPods(n int) []corev1.Pod {
	pods := make([]corev1.Pod, n)
	for i := range pods {
		pods[i] = *sandboxPodNamed(fmt.Sprintf("s%d", i), nil)
	}
	return pods
}

func objects(pods []corev1.Pod) []runtime.Object {
	out := make([]runtime.Object, len(pods))
	for i := range pods {
		out[i] = pods[i].DeepCopy()
	}
	return out
}

// gatedDeletes counts the Pod deletes in flight through it, and holds each
// until clientrate.Parallel are in flight together (the fake clientset runs
// its reactors one at a time, so the count is taken before it).
type gatedDeletes struct {
	kubernetes.Interface
	inFlight, peak atomic.Int32
	once           sync.Once
	full           chan struct{}
}

func (g *gatedDeletes) CoreV1() corev1client.CoreV1Interface {
	return gatedCore{g.Interface.CoreV1(), g}
}

type gatedCore struct {
	corev1client.CoreV1Interface
	g *gatedDeletes
}

func (c gatedCore) Pods(ns string) corev1client.PodInterface {
	return gatedPods{c.CoreV1Interface.Pods(ns), c.g}
}

type gatedPods struct {
	corev1client.PodInterface
	g *gatedDeletes
}

func (p gatedPods) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	g := p.g
	now := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for peak := g.peak.Load(); now > peak && !g.peak.CompareAndSwap(peak, now); peak = g.peak.Load() {
	}
	if now == clientrate.Parallel {
		g.once.Do(func() { close(g.full) })
	}
	// A delete one at a time never fills the gate: the bound only keeps
	// such a failing test from hanging.
	select {
	case <-g.full:
	case <-time.After(5 * time.Second):
		g.once.Do(func() { close(g.full) }) // and the rest go through
	}
	return p.PodInterface.Delete(ctx, name, opts)
}

// Deleting many sandboxes keeps clientrate.Parallel deletes in flight, never
// more, each by the UID that was listed; one that fails is reported under its
// own name, in list order, and the others are deleted all the same.
func TestDeleteListedInParallelEachByUID(t *testing.T) {
	const n = 3 * clientrate.Parallel
	pods := manyPods(n)
	cs := fakeCluster(objects(pods)...)
	// s5 was re-created since it was listed: another UID, not ours to delete.
	replaced := pods[5].DeepCopy()
	replaced.UID = "newer"
	if err := cs.Tracker().Update(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, replaced, "ns"); err != nil {
		t.Fatal(err)
	}
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.DeleteActionImpl).Name == PodName("s7") {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, PodName("s7"), errors.New("no"))
		}
		return false, nil, nil
	})
	gate := &gatedDeletes{Interface: cs, full: make(chan struct{})}

	var got []Deletion
	DeleteListed(context.Background(), gate, pods, nil, nil, func(d Deletion) { got = append(got, d) })

	if p := gate.peak.Load(); p != clientrate.Parallel {
		t.Errorf("at most %d deletes were in flight at once, want %d", p, clientrate.Parallel)
	}
	if len(got) != n {
		t.Fatalf("%d outcomes for %d sandboxes", len(got), n)
	}
	for i, d := range got {
		want := fmt.Sprintf("s%d", i)
		if d.Name != want || d.Namespace != "ns" {
			t.Fatalf("outcome %d is %s/%s, want ns/%s: outcomes not in list order", i, d.Namespace, d.Name, want)
		}
		var notFound *NotFoundError
		switch i {
		case 5:
			if !errors.As(d.Err, &notFound) {
				t.Errorf("s5 (replaced since listed): %v, want not found", d.Err)
			}
		case 7:
			if !apierrors.IsForbidden(d.Err) || !strings.Contains(d.Err.Error(), `sandbox "s7" in namespace "ns"`) {
				t.Errorf("s7: %v, want the API server's refusal, naming the sandbox", d.Err)
			}
		default:
			if d.Err != nil || d.Pod == nil || d.Pod.UID != pods[i].UID {
				t.Errorf("%s: err %v, pod %v", want, d.Err, d.Pod)
			}
		}
	}
	for _, a := range cs.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok {
			if pre := d.DeleteOptions.Preconditions; pre == nil || pre.UID == nil {
				t.Fatalf("delete of %s without a UID precondition", d.Name)
			}
		}
	}
	left, err := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range left.Items {
		names = append(names, NameOf(&p))
	}
	slices.Sort(names)
	if fmt.Sprint(names) != "[s5 s7]" {
		t.Errorf("left: %v, want only s5 (someone else's now) and s7 (refused)", names)
	}
}

// A suspended sandbox (a workspace and no Pod) is deleted after the Pods, by
// its workspace; one whose ended Pod was listed goes with that Pod.
func TestDeleteListedSuspended(t *testing.T) {
	pods := manyPods(2)
	s := NewSpec("kept", "ns")
	s.Workspace = &Workspace{}
	w := s.WorkspaceClaim()
	w.UID = "w-uid"
	cs := fakeCluster(append(objects(pods), w)...)
	var got []string
	DeleteListed(context.Background(), cs, pods, []SuspendedSandbox{{Workspace: w}, {Workspace: w, Pod: &pods[0]}}, nil, func(d Deletion) {
		got = append(got, fmt.Sprintf("%s pod=%v err=%v", d.Name, d.Pod != nil, d.Err))
	})
	want := []string{"s0 pod=true err=<nil>", "s1 pod=true err=<nil>", "kept pod=false err=<nil>"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes %q, want %q", got, want)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), w.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the suspended sandbox's workspace is still there: %v", err)
	}
}

// Names are deleted as Delete deletes one; a missing one is reported as
// such, in its place.
func TestDeleteNamed(t *testing.T) {
	pods := manyPods(40)
	cs := fakeCluster(objects(pods)...)
	names := []string{"s3", "ghost", "s39", "s0"}
	var got []Deletion
	DeleteNamed(context.Background(), cs, "ns", names, nil, func(d Deletion) { got = append(got, d) })
	if len(got) != len(names) {
		t.Fatalf("%d outcomes for %d names", len(got), len(names))
	}
	for i, d := range got {
		var notFound *NotFoundError
		switch {
		case d.Name != names[i]:
			t.Errorf("outcome %d is %s, want %s", i, d.Name, names[i])
		case names[i] == "ghost" && !errors.As(d.Err, &notFound):
			t.Errorf("ghost: %v, want not found", d.Err)
		case names[i] != "ghost" && (d.Err != nil || d.Pod == nil):
			t.Errorf("%s: %v", d.Name, d.Err)
		}
	}
	if left, _ := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{}); len(left.Items) != 37 {
		t.Errorf("%d pods left, want 37", len(left.Items))
	}
}

// Once the command is interrupted no new delete starts; every sandbox not
// deleted is reported, with the interruption as its reason.
func TestDeleteListedStopsWhenInterrupted(t *testing.T) {
	pods := manyPods(4 * clientrate.Parallel)
	cs := fakeCluster(objects(pods)...)
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("interrupted")
	var deletes atomic.Int32
	cs.PrependReactor("delete", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if deletes.Add(1) == 1 {
			cancel(stop)
		}
		return false, nil, nil
	})
	var got, interrupted int
	DeleteListed(ctx, cs, pods, nil, nil, func(d Deletion) {
		got++
		if errors.Is(d.Err, stop) {
			interrupted++
		}
	})
	if got != len(pods) {
		t.Fatalf("%d outcomes for %d sandboxes", got, len(pods))
	}
	if interrupted == 0 || int(deletes.Load()) > 2*clientrate.Parallel {
		t.Fatalf("%d deletes after the interruption, %d reported interrupted", deletes.Load(), interrupted)
	}
}

// One watch waits for many: it ends when every Pod is gone, and names each
// one that is still there when the time is up.
func TestWaitForAllDeleted(t *testing.T) {
	pods := manyPods(3)
	cs := fakeCluster(objects(pods)...)
	var ptrs []*corev1.Pod
	for i := range pods {
		ptrs = append(ptrs, &pods[i])
	}
	if err := cs.CoreV1().Pods("ns").Delete(context.Background(), pods[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	watching := fakecluster.Watching(cs, "pods")
	go func() {
		<-watching
		for _, p := range pods[1:] {
			_ = cs.CoreV1().Pods("ns").Delete(context.Background(), p.Name, metav1.DeleteOptions{})
		}
	}()
	if errs := WaitForAllDeleted(context.Background(), cs, ptrs, time.Minute); len(errs) != 0 {
		t.Fatalf("WaitForAllDeleted: %v", errs)
	}
	watches := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "watch" {
			watches++
		}
	}
	if watches != 1 {
		t.Errorf("%d watches for 3 pods, want 1", watches)
	}

	pods = manyPods(3)
	cs = fakeCluster(objects(pods)...)
	_ = cs.CoreV1().Pods("ns").Delete(context.Background(), pods[1].Name, metav1.DeleteOptions{})
	ptrs = []*corev1.Pod{&pods[0], &pods[1], &pods[2]}
	errs := WaitForAllDeleted(context.Background(), cs, ptrs, time.Second)
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), `sandbox "s0"`) || !strings.Contains(errs[1].Error(), `sandbox "s2"`) {
		t.Fatalf("WaitForAllDeleted with s0 and s2 still there: %v", errs)
	}
}

// A Pod of that name with another UID is not the one deleted.
func TestWaitForAllDeletedByUID(t *testing.T) {
	pods := manyPods(2)
	cs := fakeCluster(objects(pods)...)
	old := pods[0].DeepCopy()
	old.UID = types.UID("gone-already")
	errs := WaitForAllDeleted(context.Background(), cs, []*corev1.Pod{old, &pods[1]}, time.Second)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `sandbox "s1"`) {
		t.Fatalf("WaitForAllDeleted: %v, want only s1 not gone", errs)
	}
}

// gc deletes what it found clientrate.Parallel at a time, each by the UID
// that was read, and reports every outcome in the order found: one the API
// server refuses under its own name, the others deleted all the same.
func TestDeleteGarbageInParallelInOrder(t *testing.T) {
	const n = 3 * clientrate.Parallel
	pods := manyPods(n)
	for i := range pods {
		pods[i].Status.Phase = corev1.PodFailed
	}
	cs := fakeCluster(objects(pods)...)
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.DeleteActionImpl).Name == PodName("s7") {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, PodName("s7"), errors.New("no"))
		}
		return false, nil, nil
	})
	gate := &gatedDeletes{Interface: cs, full: make(chan struct{})}
	garbage, err := FindGarbage(context.Background(), gate, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if len(garbage) != n {
		t.Fatalf("found %d of %d ended sandboxes", len(garbage), n)
	}

	var got []string
	DeleteGarbage(context.Background(), gate, garbage, func(g Garbage, err error) {
		got = append(got, g.Name)
		switch {
		case g.Name == "s7" && !apierrors.IsForbidden(err):
			t.Errorf("s7: %v, want the API server's refusal", err)
		case g.Name != "s7" && err != nil:
			t.Errorf("%s: %v", g.Name, err)
		}
	})

	if p := gate.peak.Load(); p != clientrate.Parallel {
		t.Errorf("at most %d deletes were in flight at once, want %d", p, clientrate.Parallel)
	}
	for i, g := range garbage {
		if i >= len(got) || got[i] != g.Name {
			t.Fatalf("outcomes %v, want the order found", got)
		}
	}
	if len(got) != n {
		t.Fatalf("%d outcomes for %d", len(got), n)
	}
	for _, a := range cs.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok {
			if pre := d.DeleteOptions.Preconditions; pre == nil || pre.UID == nil {
				t.Fatalf("delete of %s without a UID precondition", d.Name)
			}
		}
	}
	left, err := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 1 || NameOf(&left.Items[0]) != "s7" {
		t.Errorf("left %d pods, want only s7 (refused)", len(left.Items))
	}
}

// Interrupted, gc starts no new delete and reports the rest as interrupted.
func TestDeleteGarbageStopsWhenInterrupted(t *testing.T) {
	pods := manyPods(3)
	for i := range pods {
		pods[i].Status.Phase = corev1.PodSucceeded
	}
	cs := fakeCluster(objects(pods)...)
	garbage, err := FindGarbage(context.Background(), cs, "ns")
	if err != nil || len(garbage) != 3 {
		t.Fatalf("found %d, %v", len(garbage), err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("interrupted"))
	outcomes := 0
	DeleteGarbage(ctx, cs, garbage, func(g Garbage, err error) {
		outcomes++
		if err == nil || err.Error() != "interrupted" {
			t.Errorf("%s: %v, want interrupted", g.Name, err)
		}
	})
	if outcomes != 3 {
		t.Errorf("%d outcomes, want 3", outcomes)
	}
	left, _ := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if len(left.Items) != 3 {
		t.Errorf("%d pods left, want all 3", len(left.Items))
	}
}
