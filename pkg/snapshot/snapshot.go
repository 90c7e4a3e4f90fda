// Package snapshot takes CSI VolumeSnapshots of persistent sandboxes'
// workspaces, and finds what a new sandbox's workspace can start from: a
// snapshot, or another sandbox's workspace to clone. It needs nothing of
// ours in the cluster: the cluster's snapshot controller and CSI driver do
// the work; where the cluster has neither, a workspace travels as an
// archive instead (pkg/transfer).
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Labels and annotations on the VolumeSnapshots we take.
const (
	// LabelSandbox names the sandbox whose workspace a snapshot holds.
	LabelSandbox = "agentkernel/snapshot-of"
	// AnnotationStorageClass is the source workspace's StorageClass: a
	// workspace restored from the snapshot is of the same class (a CSI
	// restore needs the snapshot's driver).
	AnnotationStorageClass = "agentkernel/storage-class"
)

// Options are the choices of Take.
type Options struct {
	// Class is the VolumeSnapshotClass; "" lets the cluster's snapshot
	// controller take the default class of the workspace's driver.
	Class string
	// Flush runs in the running sandbox before the snapshot is asked for
	// (`sync`): the snapshot then holds every write a command saw
	// acknowledged. A suspended sandbox has nothing to flush.
	Flush func(ctx context.Context, pod *corev1.Pod) error
	// Wait: wait until the snapshot is ready to use, for at most Timeout
	// (0: no bound). A snapshot that fails, or is not ready in time, or
	// whose wait is interrupted, is deleted again: nothing half-taken is
	// left to restore from.
	Wait    bool
	Timeout time.Duration
}

// Take asks for a CSI snapshot, called snapshotName, of the workspace of
// the persistent sandbox called name, running or suspended.
func Take(ctx context.Context, cs kubernetes.Interface, sc snapclient.Interface, namespace, name, snapshotName string, o Options) (*snapv1.VolumeSnapshot, error) {
	pvc, err := sandbox.FindWorkspace(ctx, cs, namespace, name)
	if err != nil {
		return nil, err
	}
	if pod, err := sandbox.Find(ctx, cs, namespace, name); err == nil && o.Flush != nil &&
		pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning {
		if err := o.Flush(ctx, pod); err != nil {
			return nil, fmt.Errorf("flushing sandbox %q's writes to its workspace before the snapshot: %w; no snapshot was taken", name, err)
		}
	}
	vs := &snapv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{
			Name:      snapshotName,
			Namespace: namespace,
			Labels:    map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy, LabelSandbox: name},
		},
		Spec: snapv1.VolumeSnapshotSpec{Source: snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: &pvc.Name}},
	}
	if class := pvc.Spec.StorageClassName; class != nil && *class != "" {
		vs.Annotations = map[string]string{AnnotationStorageClass: *class}
	}
	if o.Class != "" {
		vs.Spec.VolumeSnapshotClassName = &o.Class
	}
	made, err := sc.SnapshotV1().VolumeSnapshots(namespace).Create(ctx, vs, metav1.CreateOptions{})
	switch {
	case IsNoSnapshotAPI(err):
		return nil, &NoSnapshotAPIError{Namespace: namespace}
	case apierrors.IsAlreadyExists(err):
		return nil, &ExistsError{Name: snapshotName, Namespace: namespace}
	case err != nil:
		return nil, err
	}
	if !o.Wait {
		return made, nil
	}
	ready, err := waitReady(ctx, sc, made, o.Timeout)
	if err != nil {
		// Nothing half-taken stays behind: a snapshot that failed, or whose
		// wait ended, is deleted (with a context of its own: ctx may be the
		// one that ended).
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := sc.SnapshotV1().VolumeSnapshots(namespace).Delete(dctx, made.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &made.UID},
		}); derr != nil && !apierrors.IsNotFound(derr) {
			return nil, errors.Join(err, fmt.Errorf("deleting the unfinished volumesnapshot/%s: %w", made.Name, derr))
		}
		return nil, err
	}
	return ready, nil
}

// waitReady waits until vs is ready to use, or says why it will not be.
func waitReady(ctx context.Context, sc snapclient.Interface, vs *snapv1.VolumeSnapshot, timeout time.Duration) (*snapv1.VolumeSnapshot, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	ctx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	var last *snapv1.VolumeSnapshot
	ev, err := watchtools.UntilWithSync(ctx, listWatch(sc, vs.Namespace, vs.Name, refuse), &snapv1.VolumeSnapshot{}, nil,
		func(ev watch.Event) (bool, error) {
			s, ok := ev.Object.(*snapv1.VolumeSnapshot)
			if !ok || s.UID != vs.UID {
				return false, nil
			}
			if ev.Type == watch.Deleted {
				return false, fmt.Errorf("volumesnapshot/%s in namespace %q was deleted while it was being taken", vs.Name, vs.Namespace)
			}
			last = s
			return ready(s)
		})
	cause := context.Cause(ctx)
	switch {
	case err == nil:
		return ev.Object.(*snapv1.VolumeSnapshot), nil
	case errors.Is(cause, context.DeadlineExceeded):
		return nil, &NotReadyError{Name: vs.Name, Namespace: vs.Namespace, Timeout: timeout, Status: describe(last)}
	case cause != nil:
		return nil, cause // interrupted, or refused (the list or watch was forbidden)
	}
	return nil, err
}

// listWatch lists and watches one VolumeSnapshot by name. A list or watch
// the user may not make ends the wait through refuse: the informer under
// UntilWithSync would retry it quietly until the timeout.
func listWatch(sc snapclient.Interface, namespace, name string, refuse context.CancelCauseFunc) cache.ListerWatcher {
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	snaps := sc.SnapshotV1().VolumeSnapshots(namespace)
	check := func(err error) {
		if apierrors.IsForbidden(err) {
			refuse(err)
		}
	}
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, options metav1.ListOptions) (runtime.Object, error) {
			options.FieldSelector = selector
			l, err := snaps.List(ctx, options)
			check(err)
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, options metav1.ListOptions) (watch.Interface, error) {
			options.FieldSelector = selector
			w, err := snaps.Watch(ctx, options)
			check(err)
			return w, err
		},
	}, sc)
}

// ready: the snapshot can be restored from, or an error says why it never
// will be.
func ready(s *snapv1.VolumeSnapshot) (bool, error) {
	st := s.Status
	if st == nil {
		return false, nil
	}
	if st.Error != nil && st.Error.Message != nil && (st.ReadyToUse == nil || !*st.ReadyToUse) {
		return false, &FailedError{Name: s.Name, Namespace: s.Namespace, Message: *st.Error.Message}
	}
	return st.ReadyToUse != nil && *st.ReadyToUse, nil
}

// describe is a snapshot's state in a few words, for a wait that ended.
func describe(s *snapv1.VolumeSnapshot) string {
	switch {
	case s == nil || s.Status == nil:
		return "the snapshot controller has not taken it up (is one running in the cluster?)"
	case s.Status.BoundVolumeSnapshotContentName == nil:
		return "no VolumeSnapshotContent yet"
	}
	return "its content " + *s.Status.BoundVolumeSnapshotContentName + " is not ready to use yet"
}

// IsNoSnapshotAPI: the cluster does not serve snapshot.storage.k8s.io/v1
// VolumeSnapshots (the CRDs are not installed). The API server answers a
// resource it does not know with a bare 404.
func IsNoSnapshotAPI(err error) bool {
	if !apierrors.IsNotFound(err) {
		return false
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d == nil || d.Name == ""
}

// Find returns the VolumeSnapshot called name in namespace, or a
// NotFoundError (or NoSnapshotAPIError) saying so.
func Find(ctx context.Context, sc snapclient.Interface, namespace, name string) (*snapv1.VolumeSnapshot, error) {
	vs, err := sc.SnapshotV1().VolumeSnapshots(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case IsNoSnapshotAPI(err):
		return nil, &NoSnapshotAPIError{Namespace: namespace}
	case apierrors.IsNotFound(err):
		return nil, &NotFoundError{Name: name, Namespace: namespace}
	case err != nil:
		return nil, err
	}
	return vs, nil
}

// Restorable checks that vs can be restored from now: ready, with a size.
func Restorable(vs *snapv1.VolumeSnapshot) error {
	ok, err := ready(vs)
	switch {
	case err != nil:
		return err
	case !ok || vs.DeletionTimestamp != nil:
		return &NotReadyError{Name: vs.Name, Namespace: vs.Namespace, Status: describe(vs)}
	}
	return nil
}

// DefaultName is the name of a snapshot of sandbox name taken at t when the
// user names none: sortable, and unique to the second.
func DefaultName(name string, t time.Time) string {
	return name + "-" + strings.ToLower(t.UTC().Format("20060102-150405"))
}
