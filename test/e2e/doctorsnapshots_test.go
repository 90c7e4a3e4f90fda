package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/doctor"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// snapshotsLine is doctor's one line of the snapshots check.
func (rep doctorReport) snapshotsLine(t *testing.T) doctor.Result {
	t.Helper()
	var lines []doctor.Result
	for _, f := range rep.Items {
		if f.Check == "snapshots" {
			lines = append(lines, f)
		}
	}
	if len(lines) != 1 {
		b, _ := json.MarshalIndent(rep.Items, "", "  ")
		t.Fatalf("want one snapshots line, got %d:\n%s", len(lines), b)
	}
	return lines[0]
}

// doctor on the real API server: no snapshot API (if no test installed it
// yet), then the CRDs and a VolumeSnapshotClass of its own, as admin, as
// a user with the optional ClusterRole, and as one without it (skipped,
// not a failure).
func TestDoctorReportsVolumeSnapshotClasses(t *testing.T) {
	requireUsers(t)
	withClusterDNS(t)
	ns := newNamespace(t)
	if !snapshotAPIServed(t) {
		rep, _ := runDoctor(t, env.kubeconfig, "-n", ns)
		rep.want(t, "snapshots", doctor.OK, "no CSI snapshot support (the cluster does not serve snapshot.storage.k8s.io/v1): snapshot NAME --to FILE and create NEW --from FILE")
	}
	installSnapshotCRDs(t)

	name := "e2e-" + strings.ToLower(sandbox.RandomHex(4))
	driver := name + ".csi.example.com"
	class := fmt.Sprintf(`apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: %s
  annotations:
    snapshot.storage.kubernetes.io/is-default-class: "true"
driver: %s
deletionPolicy: Retain
`, name, driver)
	kubectl(t, class, "apply", "-f", "-")
	t.Cleanup(func() { kubectl(t, "", "delete", "--ignore-not-found", "volumesnapshotclass", name) })
	described := name + " (driver " + driver + ", deletionPolicy Retain, default)"

	rep, _ := runDoctor(t, env.kubeconfig, "-n", ns)
	line := rep.snapshotsLine(t)
	if line.Status == doctor.Fail || !strings.HasPrefix(line.Found, "VolumeSnapshotClasses: ") || !strings.Contains(line.Found, described) {
		t.Errorf("doctor as admin does not report the class %s: %+v", described, line)
	}
	if !hasDefaultStorageClass(t) {
		// The local control plane has none: nothing to match the class with.
		rep.want(t, "snapshots", doctor.OK, "no default StorageClass to match them with")
	}

	// A user with the plugin's ClusterRole lists them; one without is told
	// doctor skipped it, and doctor does not fail for it.
	full, plain := newUser(t, "e2e-doctor-snap-all"), newUser(t, "e2e-doctor-snap")
	applyRBAC(t, "-n", ns, "--user", full.name, "--all-namespaces")
	applyRBAC(t, "-n", ns, "--user", plain.name)
	p := rbacPermission(t, "list volumesnapshotclasses.snapshot.storage.k8s.io -A")
	waitForAccess(t, full, ns, p, true)
	waitForAccess(t, plain, ns, p, false)
	waitForAccess(t, plain, ns, rbacPermission(t, "create pods/exec"), true)

	rep, _ = runDoctor(t, full.kubeconfig, "-n", ns)
	if line := rep.snapshotsLine(t); !strings.Contains(line.Found, described) {
		t.Errorf("doctor with the ClusterRole does not report the class: %+v", line)
	}
	rep, r := runDoctor(t, plain.kubeconfig, "-n", ns)
	rep.want(t, "snapshots", doctor.Warn, `unknown (skipped): cannot list VolumeSnapshotClasses: volumesnapshotclasses.snapshot.storage.k8s.io is forbidden: User "`+plain.name+`" cannot list resource "volumesnapshotclasses"`)
	rep.want(t, "snapshots", doctor.Warn, "unknown (skipped)")
	if line := rep.snapshotsLine(t); !strings.Contains(line.Action, "kubectl agentkernel rbac --all-namespaces") {
		t.Errorf("the skipped line does not say how to let doctor list them: %+v", line)
	}
	if r.code != 0 {
		t.Errorf("a namespace healthy but for the optional ClusterRole fails:\n%s", r)
	}

	// The class goes; doctor no longer names it.
	kubectl(t, "", "delete", "volumesnapshotclass", name)
	rep, _ = runDoctor(t, env.kubeconfig, "-n", ns)
	if line := rep.snapshotsLine(t); strings.Contains(line.Found, name) {
		t.Errorf("doctor still reports the deleted class: %+v", line)
	}
}

func hasDefaultStorageClass(t *testing.T) bool {
	t.Helper()
	list, err := env.cs.StorageV1().StorageClasses().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range list.Items {
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" || sc.Annotations["storageclass.beta.kubernetes.io/is-default-class"] == "true" {
			return true
		}
	}
	return false
}
