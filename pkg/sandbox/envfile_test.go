package sandbox

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A missing file is said, and the command still runs.
func TestSourceScriptWithoutTheFile(t *testing.T) {
	out, err := exec.Command("/bin/sh", "-c", sourceScript, filepath.Join(t.TempDir(), "gone"), "echo", "ran").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "is missing") || !strings.HasSuffix(string(out), "ran\n") {
		t.Fatalf("%q %v", out, err)
	}
}
