// Package fakecluster is the one fake API server every test uses: client-go's
// fake clientset with the reactors our code relies on, written once (as
// kubectl's cmdtesting.NewTestFactory is written once for all its commands).
// It is imported only by tests.
package fakecluster

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// New is a fake clientset that behaves like an API server where our code
// depends on it: creates get a UID, a creation timestamp and a name from
// generateName; dry runs store nothing; every write stamps a new
// resourceVersion; updates and patches whose object carries another
// resourceVersion or UID than the stored one fail with a Conflict; deletes
// honour UID and resourceVersion preconditions. Objects given are stored
// as they are, with a resourceVersion.
func New(objects ...runtime.Object) *fake.Clientset {
	cs, _ := NewTracked(objects...)
	return cs
}

// NewTracked is New, and the Tracker behind it, for tests that play the
// cluster's other writers (a kubelet, another client) with the same
// optimistic concurrency.
func NewTracked(objects ...runtime.Object) (*fake.Clientset, *Tracker) {
	cs := fake.NewClientset()
	tr := &Tracker{ObjectTracker: cs.Tracker()}
	for _, obj := range objects {
		if err := tr.Add(obj); err != nil {
			panic(fmt.Sprintf("fakecluster: adding %T: %v", obj, err))
		}
	}
	cs.PrependReactor("*", "*", k8stesting.ObjectReaction(tr))
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
		// Distinct and ordered, so that "the newest" is well defined.
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
		// Check and delete under one lock, as the API server's storage does.
		tr.mu.Lock()
		defer tr.mu.Unlock()
		obj, err := tr.Get(da.GetResource(), da.GetNamespace(), da.GetName(), metav1.GetOptions{})
		if err != nil {
			return true, nil, err
		}
		m, _ := meta.Accessor(obj)
		gr := da.GetResource().GroupResource()
		if pre.UID != nil && m.GetUID() != *pre.UID {
			return true, nil, apierrors.NewConflict(gr, da.GetName(),
				fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %s", *pre.UID, m.GetUID()))
		}
		if pre.ResourceVersion != nil && m.GetResourceVersion() != *pre.ResourceVersion {
			return true, nil, apierrors.NewConflict(gr, da.GetName(),
				fmt.Errorf("precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s", *pre.ResourceVersion, m.GetResourceVersion()))
		}
		return true, nil, tr.Delete(da.GetResource(), da.GetNamespace(), da.GetName())
	})
	return cs, tr
}

// Tracker gives the fake clientset's object tracker the API server's
// optimistic concurrency: every write stamps a new resourceVersion, and
// an update or patch whose object carries another resourceVersion (or UID)
// than the stored one fails with a Conflict — atomically, so racing
// goroutines see exactly what racing clients of a real API server see.
// Writes straight to the tracker with an empty resourceVersion (a kubelet's
// status update) carry no precondition.
type Tracker struct {
	k8stesting.ObjectTracker
	mu sync.Mutex
	n  int64
}

func (t *Tracker) stamp(obj runtime.Object) {
	m, _ := meta.Accessor(obj)
	t.n++
	m.SetResourceVersion(strconv.FormatInt(t.n, 10))
}

// Add stores obj as it is, with a new resourceVersion.
func (t *Tracker) Add(obj runtime.Object) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stamp(obj)
	return t.ObjectTracker.Add(obj)
}

// Create stores a new obj with a new resourceVersion.
func (t *Tracker) Create(gvr schema.GroupVersionResource, obj runtime.Object, ns string, opts ...metav1.CreateOptions) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stamp(obj)
	return t.ObjectTracker.Create(gvr, obj, ns, opts...)
}

func (t *Tracker) precondition(gvr schema.GroupVersionResource, obj runtime.Object, ns string) error {
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
		return apierrors.NewConflict(gvr.GroupResource(), m.GetName(),
			fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %s", uid, om.GetUID()))
	}
	return nil
}

// Update replaces a stored object if its preconditions hold.
func (t *Tracker) Update(gvr schema.GroupVersionResource, obj runtime.Object, ns string, opts ...metav1.UpdateOptions) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.precondition(gvr, obj, ns); err != nil {
		return err
	}
	t.stamp(obj)
	return t.ObjectTracker.Update(gvr, obj, ns, opts...)
}

// Patch stores a patched object if its preconditions hold.
func (t *Tracker) Patch(gvr schema.GroupVersionResource, obj runtime.Object, ns string, opts ...metav1.PatchOptions) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.precondition(gvr, obj, ns); err != nil {
		return err
	}
	t.stamp(obj)
	return t.ObjectTracker.Patch(gvr, obj, ns, opts...)
}

// StartWhenUngated plays the scheduler and kubelet: a JSON patch to a Pod
// (the one that lifts its scheduling gates) removes the gates and start
// gives the Pod the status of a started sandbox. Other patches (a claim's
// merge patch) are left to the fake.
func StartWhenUngated(cs *fake.Clientset, start func(*corev1.Pod)) {
	pods := corev1.SchemeGroupVersion.WithResource("pods")
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchActionImpl)
		if pa.GetPatchType() != types.JSONPatchType {
			return false, nil, nil
		}
		obj, err := cs.Tracker().Get(pods, pa.GetNamespace(), pa.GetName())
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*corev1.Pod).DeepCopy()
		pod.Spec.SchedulingGates = nil
		start(pod)
		if err := cs.Tracker().Update(pods, pod, pod.Namespace); err != nil {
			return true, nil, err
		}
		return true, pod, nil
	})
}

// Watching closes the channel it returns once the first watch on resource
// is registered with the tracker. The fake, unlike an API server, does not
// replay what happened between a list and its watch from the list's
// resourceVersion: a test that writes while the code under test watches
// waits for this before it writes, or its events may fall in that gap.
func Watching(cs *fake.Clientset, resource string) <-chan struct{} {
	watching := make(chan struct{})
	var once sync.Once
	cs.PrependWatchReactor(resource, func(a k8stesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := cs.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		if err != nil {
			return true, nil, err
		}
		once.Do(func() { close(watching) })
		return true, w, nil
	})
	return watching
}
