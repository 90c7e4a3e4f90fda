package sandbox

import (
	"math"
	"strconv"
	"time"
)

// pid1Script keeps the sandbox alive between execs, and ends it once it has
// been idle for $1 seconds (0: never).
//
// A shell waiting on a child handles SIGTERM; a bare `sleep infinity` as
// PID 1 would ignore it (the kernel drops default-action signals to a
// namespace's init) and every delete would wait out the whole grace period.
//
// Idle means that no process but PID 1 exists in the container: PID 1 of a
// pid namespace sees every process of the container in /proc, the ones
// `exec` starts (kubectl exec, cp, an agent's background server) among
// them. Between checks the only other process is PID 1's own sleep, which
// has been reaped by the time /proc is read. The loop forks nothing but
// that sleep: the glob, `[`, `read` and arithmetic are shell builtins, so
// checking never makes the sandbox look busy. When the timeout is reached
// PID 1 exits 0 with a termination message, and with restartPolicy Never
// the Pod is then Succeeded: its node's resources are free, and `gc`
// deletes it — no controller needed.
//
// $2 is a file a claim may write later (IdleFile): a warm pool member is
// idle by nature, so its timeout starts only when it is claimed. SIGUSR1
// makes PID 1 read it at once; without the signal it is read within a
// minute. A sandbox can change or remove its own idle timeout this way —
// which gives it nothing it did not have: it can always stay busy, or exit.
const pid1Script = `trap 'exit 0' TERM INT HUP
trap : USR1
idle=${1:-0} quiet=0
case $idle in ''|*[!0-9]*) idle=0;; esac
while :; do
	if [ -r "$2" ] && read -r v < "$2"; then
		case $v in ''|*[!0-9]*) ;; *) [ "$v" = "$idle" ] || { idle=$v; quiet=0; };; esac
	fi
	step=60
	if [ "$idle" -gt 0 ]; then
		step=$((idle / 10)); [ "$step" -ge 1 ] || step=1; [ "$step" -le 60 ] || step=60
	fi
	sleep "$step" & s=$!
	wait "$s" || { kill "$s" 2>/dev/null; wait "$s" 2>/dev/null; }
	[ "$idle" -gt 0 ] || continue
	busy=0
	for d in /proc/[0-9]*; do
		[ "${d#/proc/}" = 1 ] || { busy=1; break; }
	done
	if [ "$busy" = 1 ]; then quiet=0; else quiet=$((quiet + step)); fi
	if [ "$quiet" -ge "$idle" ]; then
		echo "` + IdleMessagePrefix + ` no process but PID 1 ran for ${idle}s (idleTimeout)" > /dev/termination-log 2>/dev/null
		exit 0
	fi
done`

// IdleMessagePrefix starts the termination message of a sandbox that
// stopped itself for being idle; gc and list tell idle stops by it.
const IdleMessagePrefix = "agentkernel: idle:"

// IdleFile is where a claim writes the idle timeout, in seconds, of a pool
// member it took (see pid1Script).
const IdleFile = RunDir + "/idle-timeout"

// pid1Command is the sandbox container's command.
func pid1Command(idle time.Duration) []string {
	return []string{"/bin/sh", "-c", pid1Script, pid1Name, strconv.FormatInt(IdleSeconds(idle), 10), IdleFile}
}

// IdleSeconds rounds a timeout up to whole seconds, PID 1's unit.
func IdleSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}
