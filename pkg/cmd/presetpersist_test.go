package cmd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// persistingPresets is the test preset, made to keep its sandboxes' work.
const persistingPresets = clitest.Presets + "    persist: 20Gi\n    storageClass: fast\n    retain: 72h\n"

// dryRunClaim runs create --dry-run=client -o yaml and returns the
// workspace claim it would make (nil: a disposable sandbox).
func dryRunClaim(t *testing.T, args ...string) *corev1.PersistentVolumeClaim {
	t.Helper()
	out, err := runCreate(t, map[string]string{"TOOL_KEY": "k"}, append([]string{"--dry-run=client", "-o", "yaml"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	kinds, lists := clitest.ListItems(t, out)
	for i, k := range kinds {
		if k == "PersistentVolumeClaim" {
			var pvc corev1.PersistentVolumeClaim
			if err := yaml.Unmarshal(lists[0].Items[i].Raw, &pvc); err != nil {
				t.Fatal(err)
			}
			return &pvc
		}
	}
	return nil
}

func claimOf(pvc *corev1.PersistentVolumeClaim) (size, class, record string) {
	if pvc == nil {
		return "", "", ""
	}
	size = pvc.Spec.Resources.Requests.Storage().String()
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	return size, class, pvc.Annotations[sandbox.AnnotationRecord]
}

// A preset that persists makes create's sandbox persistent with its size,
// class and retention; each flag given wins over its field, and
// --persist= makes a disposable sandbox of it.
func TestCreateWithAPresetThatPersists(t *testing.T) {
	file := presetsFile(t, persistingPresets)
	preset := []string{"demo", "--agents-file", file, "--agent", "tool"}

	size, class, record := claimOf(dryRunClaim(t, preset...))
	if size != "20Gi" || class != "fast" || !strings.Contains(record, fmt.Sprintf(`"retain":%d}`, 72*time.Hour)) {
		t.Errorf("the preset's workspace: size %q class %q record %s", size, class, record)
	}
	size, class, record = claimOf(dryRunClaim(t, append(preset, "--persist=5Gi", "--storage-class", "slow", "--retain", "1h")...))
	if size != "5Gi" || class != "slow" || !strings.Contains(record, fmt.Sprintf(`"retain":%d}`, time.Hour)) {
		t.Errorf("flags did not win: size %q class %q record %s", size, class, record)
	}
	size, class, _ = claimOf(dryRunClaim(t, append(preset, "--storage-class", "slow")...))
	if size != "20Gi" || class != "slow" {
		t.Errorf("--storage-class alone: size %q class %q", size, class)
	}
	if pvc := dryRunClaim(t, append(preset, "--persist=")...); pvc != nil {
		t.Errorf("--persist= still made a workspace: %+v", pvc.Spec)
	}
	// Without the preset, nothing persists: the fields are the preset's only.
	if pvc := dryRunClaim(t, "demo"); pvc != nil {
		t.Errorf("a plain create made a workspace: %+v", pvc.Spec)
	}
	// A preset that does not persist leaves --persist alone.
	size, _, _ = claimOf(dryRunClaim(t, "demo", "--agents-file", presetsFile(t, clitest.Presets), "--agent", "tool", "--persist"))
	if size != sandbox.DefaultWorkspaceSize.String() {
		t.Errorf("--persist with a preset that does not persist: size %q", size)
	}
}

// What a preset's persistence cannot do is refused before anything is
// made, naming the preset, or the file, line and field.
func TestPresetPersistErrors(t *testing.T) {
	file := presetsFile(t, persistingPresets)
	env := map[string]string{"TOOL_KEY": "k"}

	// create --pool with persistence claims from a persistent pool (issue
	// #22): it is not refused before the pool is asked (which pool.Acquire
	// holds to the pool's persistence: pkg/pool, test/e2e); here no
	// cluster answers.
	_, err := runCreate(t, env, "demo", "--agents-file", file, "--agent", "tool", "--pool", "warm")
	if err == nil || strings.Contains(err.Error(), "persist") {
		t.Errorf("create --pool with a preset that persists: %v", err)
	}
	_, err = runCreate(t, env, "demo", "--persist", "--pool", "warm")
	if err == nil || strings.Contains(err.Error(), "persist") {
		t.Errorf("create --persist --pool: %v", err)
	}
	// --persist= lets the claim through to the pool (which has no such pool here).
	_, err = runCreate(t, env, "demo", "--agents-file", file, "--agent", "tool", "--pool", "warm", "--persist=")
	if err != nil && strings.Contains(err.Error(), "persist") {
		t.Errorf("create --pool --persist= with a preset that persists: %v", err)
	}

	bad := presetsFile(t, clitest.Presets+"    persist: lots\n")
	_, err = runCreate(t, env, "demo", "--agents-file", bad, "--agent", "tool", "--dry-run=client")
	if err == nil || err.Error() != bad+`:10: agents.tool.persist: "lots" is not a workspace size (examples: 10Gi, 500Mi; true for the default, 10Gi)` {
		t.Errorf("a bad size in the presets file: %v", err)
	}

	log := &stepLog{}
	r := runRun(t, context.Background(), log, newPlayer(t, log), env, "--agents-file", file, "--agent", "tool", "--pool", "warm", "--", "true")
	if r.err == nil || !strings.HasPrefix(r.err.Error(), "--agent tool's persist (from "+file+"; --persist= for a disposable sandbox) cannot be used with --pool") {
		t.Errorf("run --pool with a preset that persists: %v", r.err)
	}
	if r.pod != nil || r.secret != nil {
		t.Errorf("run made something before refusing: %v %v", r.pod, r.secret)
	}
	r = runRun(t, context.Background(), log, newPlayer(t, log), env, "--agents-file", bad, "--agent", "tool", "--", "true")
	if r.err == nil || !strings.Contains(r.err.Error(), bad+`:10: agents.tool.persist: "lots" is not a workspace size`) || r.pod != nil {
		t.Errorf("run with a bad size in the presets file: %v", r.err)
	}
}
