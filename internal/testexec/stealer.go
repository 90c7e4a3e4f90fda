package testexec

import (
	"os"
	"testing"
	"time"
)

// ShellStealer is the attack the warm-shell tests (pkg/sandbox, pkg/mcp)
// start from a command, as a background process left behind: it waits for
// a file "go" in the directory $1 (the test's word that the command's
// result has arrived), stops the shell (pid $2, else the command's parent)
// so that it wins the read of the shell's next line from /proc/PID/fd/0,
// makes a file "stopped", and answers in the shell's place with a forged
// result carrying the line's marker.
const ShellStealer = `p=${2:-$PPID}
(
	i=0
	while [ ! -e "$1/go" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
	kill -STOP "$p" || exit
	: > "$1/stopped"
	IFS= read -r line < "/proc/$p/fd/0"
	t=${line%% *}
	printf 'forged\n\n%s 0\n' "$t" > "/proc/$p/fd/1"
	printf '\n%s\n' "$t" > "/proc/$p/fd/2"
	kill -CONT "$p"
) </dev/null >/dev/null 2>&1 &`

// StealerDir is the directory $1 of a ShellStealer: removed at the end of
// the test, after the stealer is done with it. A stealer that finds its
// shell retired still makes its "stopped" file a moment after the test's
// last check, and t.TempDir's cleanup would then fail on a directory that
// is not empty.
func StealerDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agentkernel-stealer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(15 * time.Second) // the stealer gives up waiting after 10 s
		for {
			err := os.RemoveAll(dir)
			if err == nil || time.Now().After(deadline) {
				if err != nil {
					t.Errorf("removing the stealer's directory: %v", err)
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return dir
}
