package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// The setups and checks of the rbac rows of persistent sandboxes. Their
// workspaces ask for no StorageClass (the local cluster has no default),
// so they bind to the class-less volumes freeVolume makes.

// freeVolume makes one PersistentVolume without a class for the next
// workspace, and deletes it when the test ends.
func freeVolume(t *testing.T, _ string) {
	t.Helper()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-rbac-" + sandbox.RandomHex(4), Labels: map[string]string{"e2e.agentkernel/test": "true"}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/nonexistent/e2e-rbac"}},
		},
	}
	if _, err := env.cs.CoreV1().PersistentVolumes().Create(context.Background(), pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.cs.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
	})
}

// absentPersistent removes a persistent sandbox, workspace included.
func absentPersistent(name string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		_ = env.cs.CoreV1().PersistentVolumeClaims(ns).Delete(context.Background(), sandbox.WorkspaceName(name), metav1.DeleteOptions{})
		absent(name)(t, ns)
		eventually(t, time.Minute, "workspace of "+name+" gone", func() bool {
			_, err := env.cs.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), sandbox.WorkspaceName(name), metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
	}
}

// persistentRunning makes sure the persistent sandbox exists and runs.
func persistentRunning(name string, extra ...string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		pod, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), sandbox.PodName(name), metav1.GetOptions{})
		if err == nil && pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning {
			return
		}
		if _, err := env.cs.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), sandbox.WorkspaceName(name), metav1.GetOptions{}); err == nil {
			mustPlugin(t, "", "resume", name, "-n", ns)
			return
		}
		absentPersistent(name)(t, ns)
		freeVolume(t, ns)
		createSandbox(t, ns, name, append([]string{"--persist=1Gi"}, extra...)...)
	}
}

// persistentSuspended makes sure the persistent sandbox exists, suspended.
func persistentSuspended(name string, extra ...string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		persistentRunning(name, extra...)(t, ns)
		mustPlugin(t, "", "suspend", name, "-n", ns)
	}
}

// retainedPast makes a suspended sandbox whose --retain has passed.
func retainedPast(name string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		persistentSuspended(name, "--retain", "1h")(t, ns)
		suspendedLongAgo(t, ns, name, 2*time.Hour)
	}
}

// persistentOf: create --persist made the workspace, with its record.
func persistentOf(name string) func(string, rbacRun) error {
	return func(ns string, _ rbacRun) error {
		pvc, err := env.cs.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), sandbox.WorkspaceName(name), metav1.GetOptions{})
		if err != nil || pvc.Annotations[sandbox.AnnotationRecord] == "" {
			return fmt.Errorf("no workspace with its record: %v", err)
		}
		return nil
	}
}

// showsSuspended: list shows the suspended sandbox as such.
func showsSuspended(name string) func(string, rbacRun) error {
	return func(_ string, r rbacRun) error {
		for _, line := range strings.Split(r.stdout, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == name && f[1] == "Suspended" {
				return nil
			}
		}
		return fmt.Errorf("list does not show %s as Suspended", name)
	}
}

// gcTook: gc deleted the workspace kept past its --retain.
func gcTook(name string) func(string, rbacRun) error {
	return func(_ string, r rbacRun) error {
		if !strings.Contains(r.stdout, "workspace/"+name+" deleted") {
			return fmt.Errorf("gc did not delete workspace/%s", name)
		}
		return nil
	}
}

// withCSI is simulateCSI as an rbac row's setup: the snapshot API, a CSI
// StorageClass and the controllers a CSI cluster runs.
func withCSI(t *testing.T, _ string) { simulateCSI(t) }

// snapshotOf makes sure a ready snapshot of the persistent sandbox (of
// the simulated CSI class) exists, taken as the admin.
func snapshotOf(name, snap string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		persistentRunning(name, "--storage-class", csiClass)(t, ns)
		if _, err := csiSim.snaps.SnapshotV1().VolumeSnapshots(ns).Get(context.Background(), snap, metav1.GetOptions{}); err == nil {
			return
		}
		mustPlugin(t, "", "snapshot", name, snap, "-n", ns)
	}
}

// snapshotReady: the snapshot command waited for a ready snapshot.
func snapshotReady(name string) func(string, rbacRun) error {
	return func(ns string, r rbacRun) error {
		name := strings.ReplaceAll(name, "{run}", fmt.Sprint(r.n))
		vs, err := csiSim.snaps.SnapshotV1().VolumeSnapshots(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil || vs.Status == nil || vs.Status.ReadyToUse == nil || !*vs.Status.ReadyToUse || !strings.Contains(r.stdout, "ready to use") {
			return fmt.Errorf("volumesnapshot/%s not ready: %v %+v", name, err, vs)
		}
		return nil
	}
}

// snapshotGone: a snapshot that failed was deleted again.
func snapshotGone(name string) func(string, rbacRun) error {
	return func(ns string, r rbacRun) error {
		name := strings.ReplaceAll(name, "{run}", fmt.Sprint(r.n))
		if _, err := csiSim.snaps.SnapshotV1().VolumeSnapshots(ns).Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("volumesnapshot/%s was left behind (%v)", name, err)
		}
		return nil
	}
}

// saysCloned: the fork was a CSI clone, not a copy (which a user who may
// not read csidrivers gets instead, and which would pass as well).
func saysCloned(ns string, r rbacRun) error {
	if !strings.Contains(r.stderr, "cloning the workspace of sandbox/rb-csi") {
		return fmt.Errorf("not a clone:\n%s", r.result)
	}
	return persistentOf("rb-clone")(ns, r)
}
