package mcp

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// A process that one exec leaves behind does not put what it writes later
// into the result of a later exec: the warm shell retires, and the next
// exec gets a fresh one.
func TestExecLeftoverOutputIsNotALaterResult(t *testing.T) {
	ex := &hostExecutor{pidNS: testexec.PidNamespace(t)}
	f := start(t, fakeCluster(), ex, nil)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "bg"})
	ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "bg", "shell": "(sleep 0.5; echo leaked; echo leaked >&2) &"})
	out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "bg", "shell": "sleep 1; echo two"})
	if out.ExitCode != 0 || out.Stdout != "two\n" || out.Stderr != "" {
		t.Errorf("the exec after one that left a process behind: %+v", out)
	}
	if n := ex.count(); n != 2 {
		t.Errorf("%d streams, want 2 shells", n)
	}
}

// A process that one exec leaves behind reads the next command's line from
// the warm shell's stdin (/proc/PID/fd/0) and answers in the shell's place;
// it stops the shell so that it wins the read. The next exec must get the
// real result.
func TestExecLeftoverProcessCannotAnswerForTheNextExec(t *testing.T) {
	const stealer = testexec.ShellStealer
	dir := testexec.StealerDir(t)
	f := start(t, fakeCluster(), &hostExecutor{}, nil)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "bg"})
	ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "bg", "command": []string{"sh", "-c", stealer, "stealer", dir}})
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The old shell is stopped, or the stealer found it gone.
	for i := 0; i < 20; i++ {
		if _, err := os.Stat(filepath.Join(dir, "stopped")); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "bg", "shell": "echo real; exit 3"})
	if out.ExitCode != 3 || out.Stdout != "real\n" {
		t.Errorf("the next exec's result was forged: %+v", out)
	}
}
