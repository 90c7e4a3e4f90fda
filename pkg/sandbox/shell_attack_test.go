//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// The attacks below are real: a real sh runs the shell's script on this
// machine, and the attacker is a process of the same user, which may open
// the shell's stdin and stdout through /proc/PID/fd as any process of the
// sandbox's user may.

// stealer leaves a process behind that reads the shell's next command line
// from /proc/PID/fd/0 and answers it in the shell's place: output
// "forged" and exit status 0, framed with the line's first word. PID is
// $2, or else its parent's. It stops
// the shell while it reads, so that it, and not the shell, gets the line;
// a real attacker races for it, and sometimes wins. $1 is a directory:
// it waits for a file "go" there (the test's word that the command's result
// has arrived, so the shell waits for the next line), and makes one named
// "stopped" when the shell is.
const stealer = testexec.ShellStealer

// checkNotForged runs the command after an attack: it must either run for
// real or never be sent to the shell.
func checkNotForged(t *testing.T, sh *Shell, allowSent bool) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, err := sh.Run(ctx, []string{"sh", "-c", "echo real; exit 3"}, &out, &errOut)
	var broken *ShellBrokenError
	switch {
	case err == nil && (code != 3 || out.String() != "real\n"):
		t.Fatalf("the next command's result was forged: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	case err == nil:
	case errors.As(err, &broken) && (!broken.Sent || allowSent):
	default:
		t.Fatalf("the next command: %v", err)
	}
}

func TestShellLeftoverProcessCannotAnswerForTheNextCommand(t *testing.T) {
	for name, s := range shells(t) {
		for _, how := range []string{"in the command's session", "in a session of its own"} {
			t.Run(name+"/"+how, func(t *testing.T) {
				dir := testexec.StealerDir(t)
				command := []string{"sh", "-c", stealer, "stealer", dir}
				if how == "in a session of its own" {
					// A process group or session of the command's own would
					// not find it: setsid leaves both.
					if _, err := exec.LookPath("setsid"); err != nil || name != "host tools" {
						t.Skip("needs util-linux's setsid")
					}
					command = []string{"sh", "-c", `exec setsid -f sh -c "$0" stealer "$1" "$PPID"`, stealer, dir}
				}
				sh := startShell(t, s)
				if code, _, stderr := run(t, sh, command...); code != 0 {
					t.Fatalf("the attack did not start: exit %d, %q", code, stderr)
				}
				if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
				eventuallyTrue(t, func() bool {
					_, err := os.Stat(filepath.Join(dir, "stopped"))
					alive, _ := sh.Alive()
					return err == nil || !alive
				})
				if alive, _ := sh.Alive(); alive {
					t.Error("the shell still takes commands after one left a process behind")
				}
				checkNotForged(t, sh, false)
			})
		}
	}
}

// A command writes a line into the shell's stdin: the shell reads it after
// the command, before the next real line, and runs it; it reads that line
// from the shell's stdin (the shell is busy with it, so it is the only
// reader) and answers in the shell's place.
func TestShellRunsNoLineAnotherProcessWrote(t *testing.T) {
	forger := []string{"sh", "-c", `IFS= read -r l < "/proc/$PPID/fd/0"; t=${l%% *}; printf 'forged\n\n%s 0\n' "$t"; printf '\n%s\n' "$t" >&2`}
	words, err := quoteWords(forger)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range shells(t) {
		for format, line := range map[string]string{
			"a marker and words":                  "AK-END-x " + words,
			"a marker, the first line's key, ...": "AK-END-x - AK-KEY-x AK-OK-x " + words,
		} {
			t.Run(name+"/"+format, func(t *testing.T) {
				sh := startShell(t, s)
				if code, _, stderr := run(t, sh, "sh", "-c", `printf '%s\n' "$1" > "/proc/$PPID/fd/0"`, "inject", line); code != 0 {
					t.Fatalf("the injection failed: exit %d, %q", code, stderr)
				}
				// The shell may notice only when it reads the line: the
				// command is sent, and its outcome unknown.
				checkNotForged(t, sh, true)
			})
		}
	}
}

// What a process left behind writes later is not the output of the commands
// that come after it.
func TestShellLeftoverOutputIsNotALaterCommands(t *testing.T) {
	for name, s := range shells(t) {
		t.Run(name, func(t *testing.T) {
			sh := startShell(t, s)
			run(t, sh, "sh", "-c", "(sleep 0.5; echo leaked; echo leaked >&2) &")
			var out, errOut bytes.Buffer
			_, err := sh.Run(context.Background(), []string{"sh", "-c", "sleep 1; echo two"}, &out, &errOut)
			var broken *ShellBrokenError
			switch {
			case err == nil && (out.String() != "two\n" || errOut.String() != ""):
				t.Fatalf("a later command's output: %q, %q", out.String(), errOut.String())
			case err != nil && (!errors.As(err, &broken) || broken.Sent):
				t.Fatalf("the next command: %v", err)
			}
		})
	}
}

// A process left behind is the agent's to keep (a server it started): the
// shell that retires does not take its stdout away from under it.
func TestShellLeftoverProcessKeepsRunning(t *testing.T) {
	dir := t.TempDir()
	// On this machine's pid namespace: the test's own one would end its
	// leftover with the shell. What else runs here cannot matter: the
	// shell is closed after one command whatever it saw.
	sh := startShell(t, streamer{r: &hostRunner{}})
	run(t, sh, "sh", "-c", `(sleep 0.5; echo tick; echo tick >&2; sleep 0.2; : > "$1/alive") &`, "server", dir)
	sh.Close() // what the MCP server does with a shell that is no longer alive
	eventuallyTrue(t, func() bool { _, err := os.Stat(filepath.Join(dir, "alive")); return err == nil })
}

// Processes that someone else starts while a command runs (PID 1's sleep,
// a main process's workers) do not retire the shell; a command that waits
// for its children does not either.
func TestShellIgnoresOtherSessions(t *testing.T) {
	// Inside a pid namespace of its own, like a container, so that what
	// this busy machine starts meanwhile is not seen; the busy session is
	// there before the shell, as a main process would be.
	const busy = `setsid sh -c 'while :; do sleep 0.01; done' & `
	wrap := pidNamespaceWith(t, busy)
	if wrap == nil {
		cmd := exec.Command("sh", "-c", "while :; do sleep 0.01; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	sh := startShell(t, streamer{r: &hostRunner{}, wrap: wrap})
	for i := range 10 {
		if code, stdout, _ := run(t, sh, "sh", "-c", "sleep 0.05 & wait; echo done"); code != 0 || stdout != "done\n" {
			t.Fatalf("command %d: %d %q", i, code, stdout)
		}
	}
	if alive, _ := sh.Alive(); !alive {
		t.Fatal("the shell retired although no command left a process behind")
	}
}
