package procs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// runners are the sandboxes the scripts meet: this machine's sh (dash on
// Debian) and tools, and busybox's sh and applets where busybox is
// installed.
func runners(t *testing.T) map[string]*testexec.HostRunner {
	out := map[string]*testexec.HostRunner{"host": {}}
	if bb, err := exec.LookPath("busybox"); err == nil {
		dir := testexec.ToolDir(t)
		for _, applet := range []string{"mkfifo", "setsid", "dd", "wc", "head", "tail", "sleep", "printf", "echo", "true", "seq", "kill", "ls"} {
			if err := os.Symlink(bb, filepath.Join(dir, applet)); err != nil {
				t.Fatal(err)
			}
		}
		out["busybox"] = &testexec.HostRunner{Path: dir}
	}
	return out
}

// newProcs is a Procs whose sandbox is this machine, with directories of
// the test's own; every process it started is killed when the test ends.
func newProcs(t *testing.T, r *testexec.HostRunner) *Procs {
	base := t.TempDir()
	p := &Procs{Exec: r, Dir: filepath.Join(base, "run"), OutputDir: filepath.Join(base, "tmp")}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		all, _ := p.List(ctx)
		for _, q := range all {
			if q.State == Running {
				_ = p.Signal(ctx, Selector{PID: q.PID}, SIGKILL)
			}
		}
		// Wait for the supervisors to write their status, so that
		// TempDir's removal does not race them.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			all, _ := p.List(ctx)
			running := 0
			for _, q := range all {
				if q.State == Running {
					running++
				}
			}
			if running == 0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return p
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
