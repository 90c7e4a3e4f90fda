package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// TestSandboxWithAHighUIDRange: a sandbox in a namespace that assigns UIDs
// from a range, as an OpenShift project does, runs on the real kubelet as
// the first UID of that range with no flag: a UID that is not 1000 and
// that no line of the image's /etc/passwd names (containerd, unlike
// OpenShift's CRI-O, adds none). Its writable directories are its own
// through fsGroup, $HOME, $USER and $LOGNAME are set, and cp works both
// ways (tar runs as that UID).
func TestSandboxWithAHighUIDRange(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	const (
		name  = "sb-high-uid"
		first = int64(1000680000)
	)
	s.annotateNamespace(ctx, t, map[string]string{
		sandbox.AnnotationSCCUIDRange:           "1000680000/10000",
		sandbox.AnnotationSCCSupplementalGroups: "1000680000/10000",
	})
	pod := s.createSandbox(ctx, t, name)
	if sc := pod.Spec.SecurityContext; *sc.RunAsUser != first || *sc.FSGroup != first {
		t.Fatalf("the sandbox runs as %d (fsGroup %d), want the range's first, %d", *sc.RunAsUser, *sc.FSGroup, first)
	}

	script := `id -u; id -g; echo "$HOME $USER $LOGNAME"
for d in /workspace /tmp "$HOME"; do touch "$d/w" && stat -c '%g' "$d/w"; done
whoami 2>/dev/null || echo "no passwd entry"`
	r := s.sandboxExec(ctx, name, "", "sh", "-c", script)
	want := fmt.Sprintf("%d\n%d\n%s sandbox sandbox\n%d\n%d\n%d\n", first, first, sandbox.HomeDir, first, first, first)
	if r.code != 0 || !strings.HasPrefix(r.stdout, want) {
		t.Errorf("in the sandbox:\n%s\nwant it to start with:\n%s", r, want)
	}
	t.Logf("whoami as %d: %s", first, strings.TrimSpace(strings.TrimPrefix(r.stdout, want)))

	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	content := randomText(t)
	if err := os.WriteFile(in, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.pluginRun(ctx, "", "cp", in, name+":/workspace/in.txt", "-n", s.namespace); r.code != 0 {
		t.Fatalf("cp in: %s", r)
	}
	if r := s.sandboxExec(ctx, name, "", "stat", "-c", "%u", "/workspace/in.txt"); strings.TrimSpace(r.stdout) != fmt.Sprint(first) {
		t.Errorf("the copied file belongs to %s, want %d", r.stdout, first)
	}
	out := filepath.Join(dir, "out.txt")
	if r := s.pluginRun(ctx, "", "cp", name+":/workspace/in.txt", out, "-n", s.namespace); r.code != 0 {
		t.Fatalf("cp out: %s", r)
	}
	if b, _ := os.ReadFile(out); string(b) != content {
		t.Errorf("cp out gave %q, want %q", b, content)
	}
}

// annotateNamespace sets annotations on the suite's namespace until the
// test ends (its cleanups run after the test's sandboxes are deleted).
func (s *suite) annotateNamespace(ctx context.Context, t *testing.T, annotations map[string]string) {
	t.Helper()
	patch := func(values map[string]any) {
		body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": values}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.client.CoreV1().Namespaces().Patch(ctx, s.namespace, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
			t.Fatalf("annotating namespace %s: %v", s.namespace, err)
		}
	}
	set, unset := map[string]any{}, map[string]any{}
	for k, v := range annotations {
		set[k], unset[k] = v, nil
	}
	patch(set)
	t.Cleanup(func() { patch(unset) })
}
