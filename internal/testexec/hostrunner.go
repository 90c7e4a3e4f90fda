// Package testexec runs a sandbox's side of an exec on this machine, for
// tests of the shell scripts and copies that meet a real sh and tar. It is
// imported only by tests.
package testexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	utilexec "k8s.io/client-go/util/exec"
)

// HostRunner runs the sandbox-side commands on this machine with a chosen
// PATH (the test's own environment when Path is empty), so the real shell
// scripts meet a real tar (GNU tar, or busybox's). Exit statuses come back
// as the CodeExitError a remote exec returns.
type HostRunner struct {
	Path string
}

func (r *HostRunner) Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Env = []string{"PATH=" + r.Path}
	if r.Path == "" {
		cmd.Env = os.Environ()
	} else if !strings.Contains(command[0], "/") {
		// exec.Command looks the program up on the test's own PATH: the
		// sandbox's sh is the one on r.Path (busybox's, not the host's).
		path, err := lookIn(r.Path, command[0])
		if err != nil {
			return utilexec.CodeExitError{Err: err, Code: 127}
		}
		cmd.Path, cmd.Err = path, nil
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return utilexec.CodeExitError{Err: err, Code: exitErr.ExitCode()}
	}
	return err
}

// lookIn finds program in the directories of path, as a sandbox's exec
// would.
func lookIn(path, program string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, program)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found on the sandbox's PATH %s", program, path)
}

// ToolDir makes a PATH directory of busybox applets (all of them but the
// ones left out, with the host's sh then), or skips when busybox is not
// installed.
func ToolDir(t testing.TB, without ...string) string {
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
	if len(without) > 0 && !skip["sh"] {
		// busybox's sh runs its own applets whatever PATH says (a
		// static busybox is built "standalone"): an image that lacks a
		// tool has another sh. The host's stands in for it.
		sh, err := exec.LookPath("sh")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "sh")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(sh, filepath.Join(dir, "sh")); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// FileRunners are the host's tools and busybox's (where it is installed),
// with the applets the single-file scripts and the shell tests use besides
// those of the copy scripts: every script runs against both.
func FileRunners(t testing.TB) map[string]*HostRunner {
	out := map[string]*HostRunner{"host tools": {}}
	if bb, err := exec.LookPath("busybox"); err == nil {
		dir := ToolDir(t)
		for _, applet := range []string{"tail", "stat", "chmod", "echo", "printf", "true", "sleep", "seq"} {
			if err := os.Symlink(bb, filepath.Join(dir, applet)); err != nil {
				t.Fatal(err)
			}
		}
		out["busybox"] = &HostRunner{Path: dir}
	}
	return out
}
