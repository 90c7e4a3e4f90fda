package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/snapshot"
)

// CSI snapshots and forks on the local control plane, with the cluster's
// controllers played by csisim_test.go: the objects the plugin makes, the
// waits, the paths it says it took, and every error a user can hit. The
// files themselves travel on the real node (test/realnode).
func TestSnapshotsAndForks(t *testing.T) {
	requireSimulated(t)
	snaps := simulateCSI(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSandbox(t, ns, "src", "--persist=1Gi", "--storage-class", csiClass)

	// A snapshot of a running sandbox: flushed, asked for, waited for.
	r := mustPlugin(t, "", "snapshot", "src", "snap1", "-n", ns)
	if !strings.Contains(r.stdout, "volumesnapshot/snap1 of sandbox/src's workspace ready to use") {
		t.Fatalf("snapshot said:\n%s", r)
	}
	vs, err := snaps.SnapshotV1().VolumeSnapshots(ns).Get(ctx, "snap1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := vs.Spec.Source.PersistentVolumeClaimName; got == nil || *got != sandbox.WorkspaceName("src") || vs.Labels[snapshot.LabelSandbox] != "src" || snapshot.StorageClass(vs) != csiClass {
		t.Fatalf("volumesnapshot: %+v", vs)
	}

	// A fork from the snapshot: its workspace is restored by the driver.
	r = mustPlugin(t, "", "create", "from-snap", "--from", "snap1", "-n", ns)
	if !strings.Contains(r.stderr, "restoring volumesnapshot/snap1 into sandbox/from-snap's workspace (a CSI restore)") {
		t.Fatalf("create --from SNAPSHOT said:\n%s", r)
	}
	wantSource(t, ns, "from-snap", "VolumeSnapshot", "snap1")

	// A fork from the sandbox itself: a CSI clone, the driver being one.
	r = mustPlugin(t, "", "create", "clone", "--from", "src", "-n", ns)
	if !strings.Contains(r.stderr, "cloning the workspace of sandbox/src (a CSI volume clone by StorageClass "+csiClass+"'s driver)") {
		t.Fatalf("create --from NAME said:\n%s", r)
	}
	wantSource(t, ns, "clone", "PersistentVolumeClaim", sandbox.WorkspaceName("src"))

	// A suspended sandbox is snapshotted as it is, without a resume; the
	// snapshot outlives the sandbox.
	mustPlugin(t, "", "suspend", "src", "-n", ns)
	r = mustPlugin(t, "", "snapshot", "src", "-n", ns)
	if !strings.Contains(r.stdout, "volumesnapshot/src-") || strings.Contains(r.stderr, "resuming") {
		t.Fatalf("snapshot of a suspended sandbox:\n%s", r)
	}
	if _, ok := getSandboxPod(t, ns, "src"); ok {
		t.Fatal("the snapshot resumed the sandbox")
	}
	mustPlugin(t, "", "delete", "src", "-n", ns)
	if _, err := snaps.SnapshotV1().VolumeSnapshots(ns).Get(ctx, "snap1", metav1.GetOptions{}); err != nil {
		t.Fatalf("deleting the sandbox took its snapshot: %v", err)
	}
	mustPlugin(t, "", "create", "after", "--from", "snap1", "-n", ns)
	wantSource(t, ns, "after", "VolumeSnapshot", "snap1")
}

func TestSnapshotErrors(t *testing.T) {
	requireSimulated(t)
	snaps := simulateCSI(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSandbox(t, ns, "ws", "--persist=1Gi", "--storage-class", csiClass)
	createSandbox(t, ns, "plain")
	noSnapshot := func(name string) {
		t.Helper()
		eventually(t, time.Minute, "volumesnapshot/"+name+" gone", func() bool {
			_, err := snaps.SnapshotV1().VolumeSnapshots(ns).Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
	}

	wantError(t, plugin(t, "", "snapshot", "plain", "s1", "-n", ns), `sandbox "plain" in namespace "`+ns+`" has no persistent workspace`)
	wantError(t, plugin(t, "", "snapshot", "plain", "s1", "-n", ns), "save the work to a file instead: kubectl agentkernel snapshot plain --to plain.tar.gz")
	noSnapshot("s1")
	wantError(t, plugin(t, "", "snapshot", "nope", "-n", ns), `sandbox "nope" not found`)

	// The class does not exist: the controller fails the snapshot, and the
	// plugin deletes it again.
	r := plugin(t, "", "snapshot", "ws", "s2", "--class", csiMissingClass, "-n", ns)
	wantError(t, r, `volumesnapshot "s2" in namespace "`+ns+`" failed: Failed to get snapshot class`)
	wantError(t, r, "it was deleted again. Name a VolumeSnapshotClass of the workspace's driver with --class")
	noSnapshot("s2")

	mustPlugin(t, "", "snapshot", "ws", "s3", "-n", ns)
	wantError(t, plugin(t, "", "snapshot", "ws", "s3", "-n", ns), `volumesnapshot "s3" already exists in namespace "`+ns+`"; name the snapshot otherwise`)
	wantError(t, plugin(t, "", "snapshot", "ws", "s4", "--to", "x.tar.gz", "-n", ns), "--to saves to a file: it takes no snapshot name and no --class")
	wantError(t, plugin(t, "", "snapshot", "ws", "Not_A_Name", "-n", ns), `invalid snapshot name "Not_A_Name"`)

	// Not ready in time: deleted again, and the error says how to wait longer.
	r = plugin(t, "", "snapshot", "ws", "pending-1", "--timeout", "2s", "-n", ns)
	wantError(t, r, `volumesnapshot "pending-1" in namespace "`+ns+`" was not ready to use within 2s`)
	wantError(t, r, "raise --timeout")
	noSnapshot("pending-1")

	// create --from names nothing there, or a snapshot not ready: nothing made.
	wantError(t, plugin(t, "", "create", "f1", "--from", "nothing", "-n", ns), `--from nothing: no sandbox or volume snapshot of that name in namespace "`+ns+`"`)
	mustPlugin(t, "", "snapshot", "ws", "pending-2", "--wait=false", "-n", ns)
	wantError(t, plugin(t, "", "create", "f2", "--from", "pending-2", "-n", ns), "--from pending-2: volumesnapshot \"pending-2\" in namespace \""+ns+"\" is not ready to use")
	for _, name := range []string{"f1", "f2"} {
		if _, ok := getWorkspace(t, ns, name); ok {
			t.Errorf("a failed create --from left the workspace of %s", name)
		}
		if _, ok := getSandboxPod(t, ns, name); ok {
			t.Errorf("a failed create --from left the pod of %s", name)
		}
	}
}

// wantSource: the sandbox's workspace was made from kind/name, and the
// (simulated) provisioner was asked for it.
func wantSource(t *testing.T, ns, name, kind, source string) {
	t.Helper()
	pvc, ok := getWorkspace(t, ns, name)
	if !ok || pvc.Spec.DataSource == nil || pvc.Spec.DataSource.Kind != kind || pvc.Spec.DataSource.Name != source {
		t.Fatalf("workspace of %s: %+v", name, pvc)
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != csiClass {
		t.Fatalf("workspace of %s not bound in %s: %+v", name, csiClass, pvc.Status)
	}
	pv, err := env.cs.CoreV1().PersistentVolumes().Get(context.Background(), pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil || pv.Annotations[annotationDataSource] != kind+"/"+source {
		t.Fatalf("the provisioner was not asked for %s/%s: %v %v", kind, source, err, pv)
	}
}
