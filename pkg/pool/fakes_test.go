package pool

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	psaapi "k8s.io/pod-security-admission/api"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	restclient "k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/pod-security-admission/policy"
)

// rvTracker gives a fake clientset the API server's optimistic
// concurrency, which claims rely on: every write stamps a new
// resourceVersion, and an update or patch whose object carries another
// resourceVersion than the stored one fails with a Conflict — atomically,
// so racing goroutines see exactly what racing clients of a real API
// server see.
type rvTracker struct {
	k8stesting.ObjectTracker
	mu sync.Mutex
	n  int64
}

func (t *rvTracker) stamp(obj runtime.Object) {
	m, _ := meta.Accessor(obj)
	t.n++
	m.SetResourceVersion(strconv.FormatInt(t.n, 10))
}

func (t *rvTracker) Add(obj runtime.Object) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stamp(obj)
	return t.ObjectTracker.Add(obj)
}

func (t *rvTracker) Create(gvr schema.GroupVersionResource, obj runtime.Object, ns string, opts ...metav1.CreateOptions) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stamp(obj)
	return t.ObjectTracker.Create(gvr, obj, ns, opts...)
}

func (t *rvTracker) precondition(gvr schema.GroupVersionResource, obj runtime.Object, ns string) error {
	m, _ := meta.Accessor(obj)
	old, err := t.Get(gvr, ns, m.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	om, _ := meta.Accessor(old)
	if rv := m.GetResourceVersion(); rv != "" && rv != om.GetResourceVersion() {
		return apierrors.NewConflict(gvr.GroupResource(), m.GetName(),
			fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	}
	if uid := m.GetUID(); uid != "" && uid != om.GetUID() {
		return apierrors.NewConflict(gvr.GroupResource(), m.GetName(), fmt.Errorf("UID mismatch"))
	}
	return nil
}

func (t *rvTracker) Update(gvr schema.GroupVersionResource, obj runtime.Object, ns string, opts ...metav1.UpdateOptions) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.precondition(gvr, obj, ns); err != nil {
		return err
	}
	t.stamp(obj)
	return t.ObjectTracker.Update(gvr, obj, ns, opts...)
}

func (t *rvTracker) Patch(gvr schema.GroupVersionResource, obj runtime.Object, ns string, opts ...metav1.PatchOptions) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.precondition(gvr, obj, ns); err != nil {
		return err
	}
	t.stamp(obj)
	return t.ObjectTracker.Patch(gvr, obj, ns, opts...)
}

// poolCluster is a fake clientset for pool and claim tests: optimistic
// concurrency (rvTracker), generateName, UIDs, creation timestamps, UID and
// resourceVersion preconditions on delete.
func poolCluster(t *testing.T, objects ...runtime.Object) (*fake.Clientset, *rvTracker) {
	t.Helper()
	tr := &rvTracker{ObjectTracker: k8stesting.NewObjectTracker(scheme.Scheme, scheme.Codecs.UniversalDecoder())}
	for _, obj := range objects {
		if err := tr.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	cs := fake.NewClientset()
	cs.PrependReactor("*", "*", k8stesting.ObjectReaction(tr))
	cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := tr.Watch(a.GetResource(), a.GetNamespace())
		return true, w, err
	})
	var n atomic.Int64
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateActionImpl)
		m, err := meta.Accessor(ca.GetObject())
		if err != nil {
			return false, nil, nil
		}
		id := n.Add(1)
		if m.GetName() == "" && m.GetGenerateName() != "" {
			m.SetName(fmt.Sprintf("%s%05d", m.GetGenerateName(), id))
		}
		if m.GetUID() == "" {
			m.SetUID(types.UID(fmt.Sprintf("uid-%d", id)))
		}
		m.SetCreationTimestamp(metav1.NewTime(time.Now().Add(time.Duration(id) * time.Millisecond)))
		if len(ca.CreateOptions.DryRun) > 0 {
			return true, ca.GetObject(), nil
		}
		return false, nil, nil
	})
	cs.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		da := a.(k8stesting.DeleteActionImpl)
		pre := da.DeleteOptions.Preconditions
		if pre == nil {
			return false, nil, nil
		}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		obj, err := tr.Get(da.GetResource(), da.GetNamespace(), da.GetName(), metav1.GetOptions{})
		if err != nil {
			return true, nil, err
		}
		m, _ := meta.Accessor(obj)
		if (pre.UID != nil && m.GetUID() != *pre.UID) || (pre.ResourceVersion != nil && m.GetResourceVersion() != *pre.ResourceVersion) {
			return true, nil, apierrors.NewConflict(da.GetResource().GroupResource(), da.GetName(), fmt.Errorf("precondition failed"))
		}
		return true, nil, tr.Delete(da.GetResource(), da.GetNamespace(), da.GetName())
	})
	return cs, tr
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

// restrictedViolations evaluates a pod with the Pod Security library itself,
// the same code the API server's admission plugin runs.
func restrictedViolations(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	agg := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec))
	if agg.Allowed {
		return ""
	}
	return agg.ForbiddenReason() + ": " + agg.ForbiddenDetail()
}
