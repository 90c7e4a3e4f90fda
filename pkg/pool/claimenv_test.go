package pool

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Whatever a value holds — quotes, newlines, $(...), backquotes — the shell
// that sources the file reads it back unchanged and runs none of it.
func FuzzEnvFileRoundTrip(f *testing.F) {
	for _, seed := range []string{"plain", "it's", "'", "''", `a'b"c`, "$(touch PWNED)", "`touch PWNED`", "line1\nline2\n", `\`, `'\''`, "ünï ☃", "", " lead and trail "} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		content, err := envFileContent([]corev1.EnvVar{{Name: "V", Value: value}}, nil, nil)
		if strings.ContainsRune(value, 0) {
			if err == nil {
				t.Fatal("a NUL byte was accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		file := filepath.Join(dir, "env")
		if err := os.WriteFile(file, content, 0o600); err != nil {
			t.Fatal(err)
		}
		args := sandbox.WithEnvFile(file, []string{"/bin/sh", "-c", `printf %s "$V"`})
		cmd := exec.Command("/bin/sh", args[1:]...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sourcing %q: %v", content, err)
		}
		if string(out) != value {
			t.Fatalf("value %q came back as %q", value, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
			t.Fatalf("sourcing %q ran a command", content)
		}
	})
}

func TestEnvFileNames(t *testing.T) {
	if _, err := envFileContent([]corev1.EnvVar{{Name: "my.var", Value: "x"}}, nil, nil); err == nil || !strings.Contains(err.Error(), "cannot be set in a claimed sandbox") {
		t.Fatalf("a name a shell cannot export: %v", err)
	}
	if _, err := envFileContent(nil, []string{"K"}, map[string]string{}); err == nil {
		t.Fatal("a secret without a value was accepted")
	}
	for ann, want := range map[string]string{
		sandbox.RunDir + "/p.env":         sandbox.RunDir + "/p.env",
		"/etc/profile":                    "",
		sandbox.RunDir + "/../etc/passwd": "",
		sandbox.RunDir + "/sub/p.env":     "",
		sandbox.RunDir + "/./p.env":       "",
		"":                                "",
	} {
		pod := &corev1.Pod{}
		pod.Annotations = map[string]string{sandbox.AnnotationEnvFile: ann}
		if got := sandbox.EnvFileOf(pod); got != want {
			t.Errorf("EnvFileOf(%q) = %q, want %q", ann, got, want)
		}
	}
}
