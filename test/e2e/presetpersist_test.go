package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A user's preset that persists: run --agent makes a persistent sandbox
// (its workspace bound by the real PV controller, in the preset's class),
// keeps it after the command, and resumes it on the next run; --persist=
// makes a disposable one of the same preset; a bad size in the file is
// refused before anything is made.
func TestRunWithAPresetThatPersists(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	class := storageFor(t, 1)
	preset := func(persist string) string {
		return filepath.Join(writeTree(t, map[string]string{"agents.yaml": `agents:
  e2e-persist:
    image: ` + sandbox.DefaultImage + `
    command: [sh, -c, "echo preset ran"]
    persist: ` + persist + `
    storageClass: ` + class + `
    retain: 2h
`}), "agents.yaml")
	}
	presets := preset("1Gi")

	r := mustPlugin(t, "", "run", "kept", "-n", ns, "--agents-file", presets, "--agent", "e2e-persist")
	if strings.TrimSpace(r.stdout) != "preset ran" || !strings.Contains(r.stderr, "sandbox/kept suspended, its work kept") {
		t.Fatalf("first run of the preset:\n%s", r)
	}
	if _, ok := getSandboxPod(t, ns, "kept"); ok {
		t.Error("the run left the Pod running")
	}
	pvc, ok := getWorkspace(t, ns, "kept")
	if !ok {
		t.Fatal("the preset's sandbox has no workspace")
	}
	if got := pvc.Spec.StorageClassName; got == nil || *got != class || pvc.Spec.Resources.Requests.Storage().String() != "1Gi" {
		t.Errorf("the workspace is not the preset's (class %s, 1Gi): %v %v", class, got, pvc.Spec.Resources.Requests)
	}
	eventually(t, time.Minute, "the workspace bound to the test's PersistentVolume", func() bool {
		pvc, ok := getWorkspace(t, ns, "kept")
		return ok && pvc.Status.Phase == corev1.ClaimBound && pvc.Spec.VolumeName == class+"-0"
	})

	r = mustPlugin(t, "", "run", "kept", "-n", ns, "--agents-file", presets, "--agent", "e2e-persist")
	if strings.TrimSpace(r.stdout) != "preset ran" || !strings.Contains(r.stderr, "resuming sandbox/kept") {
		t.Fatalf("second run of the preset:\n%s", r)
	}

	// --persist= (empty): a disposable sandbox of the same preset, which
	// leaves nothing behind (the test's one volume is taken anyway).
	r = mustPlugin(t, "", "run", "gone", "-n", ns, "--agents-file", presets, "--agent", "e2e-persist", "--persist=")
	if strings.TrimSpace(r.stdout) != "preset ran" || strings.Contains(r.stderr, "suspended") {
		t.Fatalf("run --persist= of the preset:\n%s", r)
	}
	if _, ok := getWorkspace(t, ns, "gone"); ok {
		t.Error("run --persist= made a workspace")
	}

	// A size the flag would refuse, refused with the file, line and field.
	bad := preset("lots")
	r = plugin(t, "", "run", "bad", "-n", ns, "--agents-file", bad, "--agent", "e2e-persist")
	wantError(t, r, bad+`:5: agents.e2e-persist.persist: "lots" is not a workspace size`)
	if r.code != 125 {
		t.Errorf("exit %d, want 125 (the plugin failed before the command)", r.code)
	}
	if _, ok := getSandboxPod(t, ns, "bad"); ok {
		t.Error("a Pod was made for a preset that does not parse")
	}

	mustPlugin(t, "", "delete", "kept", "-n", ns)
	eventually(t, time.Minute, "nothing left", func() bool { return len(objectsLeft(t, ns)) == 0 })
	claims, err := env.cs.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(claims.Items) != 0 {
		t.Errorf("workspaces left: %v %v", err, claims)
	}
}
