package sandbox

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	utilexec "k8s.io/client-go/util/exec"
)

// A copy of pkg/transfer's host runner, for the shell tests: one shared
// test helper package would serve both.

// hostRunner runs the sandbox-side commands on this machine with a chosen
// PATH, so the real shell scripts meet a real tar (GNU tar, or busybox's).
type hostRunner struct {
	path  string
	calls [][]string
}

func (r *hostRunner) Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error {
	r.calls = append(r.calls, command)
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Env = []string{"PATH=" + r.path}
	if r.path == "" {
		cmd.Env = os.Environ()
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return utilexec.CodeExitError{Err: err, Code: exitErr.ExitCode()}
	}
	return err
}

// toolDir makes a PATH directory of busybox applets (all of them but the
// ones left out), or skips when busybox is not installed.
func toolDir(t *testing.T, without ...string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox is not installed (apt-get install busybox-static)")
	}
	dir := t.TempDir()
	skip := map[string]bool{}
	for _, w := range without {
		skip[w] = true
	}
	for _, applet := range []string{"sh", "tar", "cat", "mkdir", "mktemp", "mv", "rm", "env", "test", "["} {
		if !skip[applet] {
			if err := os.Symlink(bb, filepath.Join(dir, applet)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

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
		out["busybox"] = &hostRunner{path: dir}
	}
	return out
}
