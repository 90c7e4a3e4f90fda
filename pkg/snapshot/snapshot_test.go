package snapshot

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

const ns = "agents"

// workspace is a persistent sandbox's claim, as create makes it, bound and
// provisioned by driver.
func workspace(name, class, driver string) *corev1.PersistentVolumeClaim {
	spec := sandbox.NewSpec(name, ns)
	spec.Workspace = &sandbox.Workspace{Size: resource.MustParse("2Gi"), StorageClass: class}
	pvc := spec.WorkspaceClaim()
	pvc.UID = types.UID("ws-" + name)
	if driver != "" {
		pvc.Annotations["volume.kubernetes.io/storage-provisioner"] = driver
	}
	return pvc
}

// snapshotter plays the cluster's snapshot controller: it answers each
// new VolumeSnapshot with the status answer gives it.
func snapshotter(t *testing.T, sc *snapfake.Clientset, answer func(*snapv1.VolumeSnapshot)) {
	t.Helper()
	sc.PrependReactor("create", "volumesnapshots", func(a k8stesting.Action) (bool, runtime.Object, error) {
		// The fake keeps the object the chain passes on: it gets a UID here.
		vs := a.(k8stesting.CreateAction).GetObject().(*snapv1.VolumeSnapshot)
		vs.UID = types.UID("uid-" + vs.Name)
		name := vs.Name
		go func() {
			time.Sleep(50 * time.Millisecond)
			got, err := sc.SnapshotV1().VolumeSnapshots(ns).Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return
			}
			answer(got)
			_, _ = sc.SnapshotV1().VolumeSnapshots(ns).UpdateStatus(context.Background(), got, metav1.UpdateOptions{})
		}()
		return false, nil, nil
	})
}

// newSnapClient is the fake snapshot client: the only fake this module
// ships (it generates no apply configurations, so no NewClientset).
func newSnapClient(objects ...runtime.Object) *snapfake.Clientset {
	return snapfake.NewSimpleClientset(objects...) //nolint:staticcheck // the only fake this client ships
}

func readyIn(size string) func(*snapv1.VolumeSnapshot) {
	return func(vs *snapv1.VolumeSnapshot) {
		q := resource.MustParse(size)
		vs.Status = &snapv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true), RestoreSize: &q, BoundVolumeSnapshotContentName: ptr.To("content-" + vs.Name)}
	}
}

func TestTakeWaitsUntilReady(t *testing.T) {
	cs := fakecluster.New(workspace("demo", "csi", "hostpath.csi.k8s.io"))
	sc := newSnapClient()
	snapshotter(t, sc, readyIn("2Gi"))
	var flushed atomic.Int32
	vs, err := Take(context.Background(), cs, sc, ns, "demo", "demo-1", Options{
		Flush: func(context.Context, *corev1.Pod) error { flushed.Add(1); return nil },
		Wait:  true, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if vs.Status == nil || !*vs.Status.ReadyToUse {
		t.Fatalf("returned before ready: %+v", vs.Status)
	}
	if got := *vs.Spec.Source.PersistentVolumeClaimName; got != sandbox.WorkspaceName("demo") {
		t.Errorf("source %q", got)
	}
	if vs.Labels[LabelSandbox] != "demo" || vs.Labels[sandbox.LabelManagedBy] != sandbox.ManagedBy || StorageClass(vs) != "csi" {
		t.Errorf("labels %v annotations %v", vs.Labels, vs.Annotations)
	}
	if vs.Spec.VolumeSnapshotClassName != nil {
		t.Errorf("a class was named (%q): the controller picks the driver's default", *vs.Spec.VolumeSnapshotClassName)
	}
	// No Pod: a suspended sandbox has nothing to flush.
	if flushed.Load() != 0 {
		t.Errorf("flushed %d times without a running Pod", flushed.Load())
	}
	if got := RestoreSize(vs); got.String() != "2Gi" {
		t.Errorf("restore size %s", got.String())
	}
}

func TestTakeFlushesARunningSandbox(t *testing.T) {
	spec := sandbox.NewSpec("demo", ns)
	spec.Workspace = &sandbox.Workspace{Size: resource.MustParse("1Gi")}
	pod := spec.Pod()
	pod.Status.Phase = corev1.PodRunning
	cs := fakecluster.New(workspace("demo", "", ""), pod)
	sc := newSnapClient()
	snapshotter(t, sc, readyIn("1Gi"))
	var flushed atomic.Int32
	if _, err := Take(context.Background(), cs, sc, ns, "demo", "s", Options{Class: "fast",
		Flush: func(context.Context, *corev1.Pod) error { flushed.Add(1); return nil }}); err != nil {
		t.Fatal(err)
	}
	if flushed.Load() != 1 {
		t.Errorf("flushed %d times", flushed.Load())
	}
	vs, err := sc.SnapshotV1().VolumeSnapshots(ns).Get(context.Background(), "s", metav1.GetOptions{})
	if err != nil || *vs.Spec.VolumeSnapshotClassName != "fast" {
		t.Fatalf("%v %+v", err, vs)
	}
	// A flush that fails takes no snapshot.
	_, err = Take(context.Background(), cs, sc, ns, "demo", "t", Options{
		Flush: func(context.Context, *corev1.Pod) error { return errors.New("read-only file system") }})
	if err == nil || !strings.Contains(err.Error(), "no snapshot was taken") {
		t.Fatalf("err = %v", err)
	}
	if _, err := sc.SnapshotV1().VolumeSnapshots(ns).Get(context.Background(), "t", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a snapshot was made: %v", err)
	}
}

// A snapshot the controller fails, or one not ready in time, is deleted
// again: nothing half-taken is left to restore from.
func TestTakeDeletesWhatFailed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(*snapv1.VolumeSnapshot)
		want   any
	}{
		{"no default class", func(vs *snapv1.VolumeSnapshot) {
			vs.Status = &snapv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false), Error: &snapv1.VolumeSnapshotError{
				Message: ptr.To("Failed to set default snapshot class with error cannot find default snapshot class")}}
		}, &FailedError{}},
		{"never ready", func(vs *snapv1.VolumeSnapshot) {
			vs.Status = &snapv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false), BoundVolumeSnapshotContentName: ptr.To("c")}
		}, &NotReadyError{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fakecluster.New(workspace("demo", "", ""))
			sc := newSnapClient()
			snapshotter(t, sc, tc.answer)
			_, err := Take(context.Background(), cs, sc, ns, "demo", "s", Options{Wait: true, Timeout: time.Second})
			switch want := tc.want.(type) {
			case *FailedError:
				if !errors.As(err, &want) || !strings.Contains(err.Error(), "cannot find default snapshot class") {
					t.Fatalf("err = %v", err)
				}
			case *NotReadyError:
				if !errors.As(err, &want) || !strings.Contains(err.Error(), "within 1s: its content c is not ready") {
					t.Fatalf("err = %v", err)
				}
			}
			if l, _ := sc.SnapshotV1().VolumeSnapshots(ns).List(context.Background(), metav1.ListOptions{}); len(l.Items) != 0 {
				t.Errorf("left behind: %v", l.Items)
			}
		})
	}
}

func TestTakeRefusals(t *testing.T) {
	ctx := context.Background()
	plain := sandbox.NewSpec("plain", ns)
	disposable := plain.Pod()
	cs := fakecluster.New(workspace("demo", "", ""), disposable)
	t.Run("not persistent", func(t *testing.T) {
		_, err := Take(ctx, cs, newSnapClient(), ns, "plain", "s", Options{})
		var np *sandbox.NotPersistentError
		if !errors.As(err, &np) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("no sandbox", func(t *testing.T) {
		_, err := Take(ctx, cs, newSnapClient(), ns, "nope", "s", Options{})
		var nf *sandbox.NotFoundError
		if !errors.As(err, &nf) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("exists", func(t *testing.T) {
		sc := newSnapClient(&snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: ns}})
		_, err := Take(ctx, cs, sc, ns, "demo", "s", Options{})
		var ex *ExistsError
		if !errors.As(err, &ex) || err.Error() != `volumesnapshot "s" already exists in namespace "agents"` {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("no snapshot API", func(t *testing.T) {
		sc := newSnapClient()
		sc.PrependReactor("*", "volumesnapshots", func(k8stesting.Action) (bool, runtime.Object, error) {
			// What an API server without the CRDs answers: a 404 naming nothing.
			return true, nil, apierrors.NewNotFound(schema.GroupResource{}, "")
		})
		_, err := Take(ctx, cs, sc, ns, "demo", "s", Options{})
		var no *NoSnapshotAPIError
		if !errors.As(err, &no) {
			t.Fatalf("err = %v", err)
		}
		if _, err := Find(ctx, sc, ns, "s"); !errors.As(err, &no) {
			t.Fatalf("Find: %v", err)
		}
	})
}

func TestFindAndRestorable(t *testing.T) {
	ctx := context.Background()
	ready := &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Name: "ok", Namespace: ns}}
	readyIn("3Gi")(ready)
	pending := &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: ns}}
	sc := newSnapClient(ready, pending)
	if vs, err := Find(ctx, sc, ns, "ok"); err != nil || Restorable(vs) != nil {
		t.Fatalf("ok: %v %v", err, Restorable(vs))
	}
	vs, err := Find(ctx, sc, ns, "pending")
	if err != nil {
		t.Fatal(err)
	}
	if err := Restorable(vs); err == nil || !strings.Contains(err.Error(), "not ready to use: the snapshot controller has not taken it up") {
		t.Fatalf("pending: %v", err)
	}
	var nf *NotFoundError
	if _, err := Find(ctx, sc, ns, "gone"); !errors.As(err, &nf) {
		t.Fatalf("gone: %v", err)
	}
	if got := From(ready); *got.APIGroup != "snapshot.storage.k8s.io" || got.Kind != "VolumeSnapshot" || got.Name != "ok" {
		t.Errorf("From: %+v", got)
	}
}

// A clone is asked only of a CSI driver the cluster knows: any other
// provisioner would hand out an empty volume.
func TestCloneable(t *testing.T) {
	ctx := context.Background()
	driver := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: "hostpath.csi.k8s.io"}}
	cs := fakecluster.New(driver)
	if ok, why := Cloneable(ctx, cs, workspace("a", "", "hostpath.csi.k8s.io")); !ok {
		t.Errorf("CSI: %s", why)
	}
	if ok, why := Cloneable(ctx, cs, workspace("b", "", "rancher.io/local-path")); ok || why != "its provisioner rancher.io/local-path is not a CSI driver" {
		t.Errorf("local-path: %v %s", ok, why)
	}
	if ok, why := Cloneable(ctx, cs, workspace("c", "", "")); ok || why != "its workspace was not made by a dynamic provisioner" {
		t.Errorf("static: %v %s", ok, why)
	}
	cs.PrependReactor("get", "csidrivers", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "storage.k8s.io", Resource: "csidrivers"}, "x", errors.New("no"))
	})
	if ok, why := Cloneable(ctx, cs, workspace("a", "", "hostpath.csi.k8s.io")); ok || !strings.Contains(why, "you may not read csidrivers") {
		t.Errorf("forbidden: %v %s", ok, why)
	}
}

func TestDefaultName(t *testing.T) {
	if got := DefaultName("demo", time.Date(2026, 12, 7, 5, 4, 3, 0, time.UTC)); got != "demo-20261207-050403" {
		t.Errorf("got %q", got)
	}
}
