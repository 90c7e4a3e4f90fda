package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// hostRunner is the host runner shared by the shell and copy tests.
type hostRunner = testexec.HostRunner

func toolDir(t *testing.T, without ...string) string { return testexec.ToolDir(t, without...) }

// fileRunners are the host runners the shell tests run against.
func fileRunners(t *testing.T) map[string]*hostRunner {
	out := map[string]*hostRunner{"host tools": {}}
	if bb, err := exec.LookPath("busybox"); err == nil {
		dir := toolDir(t)
		for _, applet := range []string{"tail", "stat", "chmod", "echo", "printf", "true", "sleep", "seq"} {
			if err := os.Symlink(bb, filepath.Join(dir, applet)); err != nil {
				t.Fatal(err)
			}
		}
		out["busybox"] = &hostRunner{Path: dir}
	}
	return out
}
