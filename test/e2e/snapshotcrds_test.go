package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// snapshotModule is the module whose CRDs (config/crd) define the CSI
// snapshot API, snapshot.storage.k8s.io/v1: the same version the plugin's
// client is built from, so the API served is the one it speaks.
const snapshotModule = "github.com/kubernetes-csi/external-snapshotter/client/v8"

// snapshotCRDs are installed once per run (cluster-scoped, shared by every
// test that needs the API); a failed install is tried again by the next
// caller.
var snapshotCRDs struct {
	sync.Mutex
	installed bool
}

// installSnapshotCRDs makes the cluster serve snapshot.storage.k8s.io/v1
// (VolumeSnapshotClasses, VolumeSnapshots, VolumeSnapshotContents), as a
// cluster with the CSI external-snapshotter does; no snapshot controller
// runs, so snapshots stay unbound. Idempotent (server-side apply), and
// never undone: other tests, and later runs on a kept cluster, may use the
// API at the same time.
func installSnapshotCRDs(t *testing.T) {
	t.Helper()
	snapshotCRDs.Lock()
	defer snapshotCRDs.Unlock()
	if snapshotCRDs.installed {
		return
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", snapshotModule).Output()
	if err != nil {
		t.Fatalf("finding %s (the CRDs ship in it): %v", snapshotModule, err)
	}
	files, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "snapshot.storage.k8s.io_*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("the snapshot CRDs of %s: %v %v", snapshotModule, files, err)
	}
	args := []string{"apply", "--server-side", "--force-conflicts", "--field-manager", "agentkernel-e2e"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	kubectl(t, "", args...)
	for _, crd := range []string{"volumesnapshotclasses", "volumesnapshots", "volumesnapshotcontents"} {
		kubectl(t, "", "wait", "--for", "condition=Established", "--timeout", "60s", "crd/"+crd+".snapshot.storage.k8s.io")
	}
	// Established is the CRD's; discovery, which doctor and the plugin
	// ask, follows a moment later.
	eventually(t, time.Minute, "discovery serves snapshot.storage.k8s.io/v1", func() bool {
		list, err := env.cs.Discovery().ServerResourcesForGroupVersion("snapshot.storage.k8s.io/v1")
		return err == nil && len(list.APIResources) >= 3
	})
	snapshotCRDs.installed = true
}

// snapshotAPIServed reports whether the cluster serves the snapshot API
// now (installed by an earlier test, or by the cluster's admin).
func snapshotAPIServed(t *testing.T) bool {
	t.Helper()
	_, err := env.cs.Discovery().ServerResourcesForGroupVersion("snapshot.storage.k8s.io/v1")
	return err == nil
}

// withSnapshotAPI is installSnapshotCRDs as an rbac row's setup.
func withSnapshotAPI(t *testing.T, _ string) { installSnapshotCRDs(t) }
