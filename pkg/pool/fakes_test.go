package pool

import (
	"context"
	"io"
	"net/url"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// rvTracker is the fake cluster's tracker, through which tests play the
// cluster's other writers.
type rvTracker = fakecluster.Tracker

// poolCluster is the fake cluster for pool and claim tests, with its
// tracker.
func poolCluster(t *testing.T, objects ...runtime.Object) (*fake.Clientset, *rvTracker) {
	t.Helper()
	return fakecluster.NewTracked(objects...)
}

// runPool makes every pod of the namespace that is not gated Running and
// Ready, as a node would, and returns how many it started.
func runPods(t *testing.T, tr *rvTracker, ns string) int {
	t.Helper()
	gvr := corev1.SchemeGroupVersion.WithResource("pods")
	obj, err := tr.List(gvr, corev1.SchemeGroupVersion.WithKind("Pod"), ns)
	if err != nil {
		t.Fatal(err)
	}
	started := 0
	for _, p := range obj.(*corev1.PodList).Items {
		if len(p.Spec.SchedulingGates) > 0 || p.Status.Phase == corev1.PodRunning {
			continue
		}
		p.Status = runningStatus()
		p.ResourceVersion = "" // a status update by the node: no precondition
		if err := tr.Update(gvr, &p, ns); err != nil {
			t.Fatal(err)
		}
		started++
	}
	return started
}

func runningStatus() corev1.PodStatus {
	return corev1.PodStatus{
		Phase:      corev1.PodRunning,
		StartTime:  &metav1.Time{Time: time.Now().Add(-time.Minute)},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: sandbox.ContainerName, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
	}
}

// newTestPool creates pool name of size members and starts them.
func newTestPool(t *testing.T, cs *fake.Clientset, tr *rvTracker, name string, size int, mutate func(*sandbox.Spec)) *Pool {
	t.Helper()
	spec := sandbox.NewSpec(name, "ns")
	if mutate != nil {
		mutate(&spec)
	}
	p, err := NewPool(name, spec, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreatePool(context.Background(), cs, p, PoolOptions{}); err != nil {
		t.Fatal(err)
	}
	runPods(t, tr, "ns")
	return p
}

// pods returns every pod in ns.
func podsIn(t *testing.T, cs *fake.Clientset, ns string) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// execRecorder is an Executor that records each exec and its stdin.
type execRecorder struct {
	mu     sync.Mutex
	urls   []*url.URL
	stdins []string
	err    error
}

func (e *execRecorder) ExecuteWithContext(_ context.Context, u *url.URL, _ *restclient.Config, stdin io.Reader, _, _ io.Writer, _ bool, _ remotecommand.TerminalSizeQueue) error {
	in := ""
	if stdin != nil {
		b, _ := io.ReadAll(stdin)
		in = string(b)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.urls = append(e.urls, u)
	e.stdins = append(e.stdins, in)
	return e.err
}

// execFor builds PodExecs on a REST client that only makes URLs.
func (e *execRecorder) execFor(t *testing.T) func(*corev1.Pod) *sandbox.PodExec {
	t.Helper()
	rc, err := restclient.RESTClientFor(&restclient.Config{
		Host:    "https://apiserver.invalid",
		APIPath: "/api",
		ContentConfig: restclient.ContentConfig{
			GroupVersion:         &corev1.SchemeGroupVersion,
			NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(pod *corev1.Pod) *sandbox.PodExec { return sandbox.NewPodExec(&restclient.Config{}, rc, e, pod) }
}

// untilFails runs f in the background and, every 50 ms until it returns,
// plays the node with play (again and again: a fake watch has no history,
// so a status written between its list and its watch would be lost). It
// returns f's error, which must come within 30 s.
func untilFails(t *testing.T, what string, f func() error, play func()) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("%s did not fail", what)
			}
			return err
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not fail", what)
		}
		play()
	}
}
