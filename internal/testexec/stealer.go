package testexec

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
