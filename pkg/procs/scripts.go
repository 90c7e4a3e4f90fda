package procs

// The sandbox side: sh and what every image has (mkdir, mktemp, mkfifo,
// cat, dd, wc, tail, head, rm, mv, sleep; setsid where it is there). Every
// script starts with lib and takes its arguments after $0: the run
// directory, the output directory, then its own. Nothing secret is ever an
// argument: a process's spec (its environment) arrives on stdin.
//
// A process's directory ($R/p.XXXXXXXX, R = sandbox.RunDir/procs):
//
//	spec    the sh fragment the host wrote (ak_config, ak_tag, ak_cwd, ak_stdin,
//	        ak_run), removed once sourced
//	config  the spec as the host sent it (JSON), for listings
//	tag     the tag, one line
//	pid     "PID STARTTIME" of the process (STARTTIME: /proc/PID/stat's 22nd field)
//	super   "PID STARTTIME" of its supervisor
//	stdin   a FIFO, the process's stdin; gone once stdin is closed or the process ended
//	o, e    FIFOs from the process's stdout and stderr to the pumps
//	signal  the last signal this package sent it
//	exit    its exit status as the supervisor's wait saw it (128+N: signal N)
//
// Its output goes to $T/p.XXXXXXXX/{stdout,stderr} instead (T under /tmp):
// the run directory is a memory-backed emptyDir of 2 MiB whose overflow gets
// the Pod evicted, while /tmp is disk-backed; and the pumps stop keeping
// output at a cap, so that a flood fills neither.
//
// A PID is signalled only while /proc/PID/stat still shows the start time
// it had: a PID the kernel gave to another process since is not the
// process. The sandbox's own processes can write everything here (they run
// as the same user): a hostile one can lie about itself, and the host's
// parsers are bounded for that, but nothing it writes reaches beyond its
// sandbox.

// lib holds the functions every script uses. ak_stat PID sets ak_st to the
// process's start time, ak_state to its state and ak_pg to its process
// group (builtins only, so it forks nothing); ak_kill SIG PID signals a
// process and, where it leads one, its process group; ak_alive PID ST succeeds while that process exists and is not a
// zombie (an ended supervisor is its parent's until reaped: the start
// script is gone, so that is PID 1, which may reap it only after its own
// sleep — a zombie counted as alive made every process end up to 2 s
// late); ak_find SELECTOR sets D and O to a
// process's directories (the running one, if the PID was used twice).
const lib = `set -u
R=$1 T=$2
shift 2
ak_stat() {
	ak_st= ak_s= ak_state=
	{ IFS= read -r ak_s < "/proc/$1/stat"; } 2>/dev/null || return 1
	case $ak_s in *') '*) ;; *) return 1;; esac
	set -f
	set -- ${ak_s##*') '}
	set +f
	[ $# -ge 20 ] || return 1
	ak_st=${20} ak_state=$1 ak_pg=$3
}
ak_kill() {
	# A process in a session of its own (setsid) leads its process group:
	# the signal reaches every process it started. Otherwise it alone.
	# No "--": busybox's kill takes it for a PID, says so and fails after
	# signalling the rest, and a second try then finds the process gone.
	ak_t=$2
	ak_stat "$2" && [ "$ak_pg" = "$2" ] && ak_t=-$2
	kill -"$1" "$ak_t"
}
ak_alive() {
	case $1 in ''|*[!0-9]*) return 1;; esac
	ak_stat "$1" && [ "$ak_st" = "$2" ] && [ "$ak_state" != Z ] && [ "$ak_state" != X ]
}
ak_read() {
	ak_v= ak_w=
	{ IFS=' ' read -r ak_v ak_w _ < "$1"; } 2>/dev/null
	case $ak_v in ''|*[!0-9]*) ak_v=;; esac
	case $ak_w in ''|*[!0-9]*) ak_w=;; esac
}
ak_find() {
	D= O= ak_best=
	for ak_d in "$R"/p.*; do
		[ -d "$ak_d" ] || continue
		case $1 in
		pid:*)
			ak_read "$ak_d/pid"
			[ "$ak_v" = "${1#pid:}" ] || continue
			if ak_alive "$ak_v" "$ak_w"; then ak_best=$ak_d; break; fi;;
		tag:*)
			ak_t=
			{ IFS= read -r ak_t < "$ak_d/tag"; } 2>/dev/null
			[ "$ak_t" = "${1#tag:}" ] || continue
			ak_read "$ak_d/pid"
			if ak_alive "$ak_v" "$ak_w"; then ak_best=$ak_d; break; fi;;
		*) return 1;;
		esac
		[ -n "$ak_best" ] || ak_best=$ak_d
	done
	[ -n "$ak_best" ] || return 1
	D=$ak_best O=$T/${ak_best##*/}
}
`

// startScript starts one process: $1 is the cap of each output stream in
// bytes (the pump keeps less than 64 KiB more), $2 the most process
// directories kept, $3 (optional) the largest frame of output to follow the
// process with. Its stdin is the spec. It prints "AKPROC PID ID" once the
// process runs. Without $3 the supervisor prints it, and then lets go of the
// exec's stdout, which ends the exec. With $3 the exec's shell prints it
// once the pid file is there and goes on as the output script in follow
// mode from the start (startFollowScript): one exec instead of two, which
// halves what `commands.run` waits for where an exec is slow to start.
//
// The supervisor is a subshell in the background that outlives the exec:
// it holds the stdin FIFO open read-write (so that writers come and go
// without the process seeing EOF, until CloseStdin makes it let go: USR1),
// starts the pumps and the process (in a session of its own where setsid
// is there, so that a signal reaches every process it started), waits for
// it, waits for the pumps to drain its output, then writes its exit status
// and ends. It leaves no process of its own behind; processes the command
// left running and holding its output keep it "running", as in envd.
//
// Exit codes: 3 the directories cannot be made, 4 cwd is not a directory,
// 5 too many processes are running to start one more.
const startScript = lib + `cap=$1 keep=$2 fmax=${3-}
umask 077
mkdir -p "$R" "$T" || exit 3
# Make room: drop the oldest finished processes while there are too many.
while :; do
	n=0 old= oldst=
	for d in "$R"/p.*; do
		[ -d "$d" ] || continue
		n=$((n + 1))
		ak_read "$d/pid"; p=$ak_v ps=$ak_w
		ak_read "$d/super"
		if [ ! -e "$d/exit" ] && { ak_alive "$p" "$ps" || ak_alive "$ak_v" "$ak_w"; }; then continue; fi
		if [ -z "$old" ] || [ "${ps:-0}" -lt "${oldst:-0}" ]; then old=$d oldst=${ps:-0}; fi
	done
	[ "$n" -ge "$keep" ] || break
	[ -n "$old" ] || { echo "agentkernel: $n processes are running in this sandbox; end one before starting another" >&2; exit 5; }
	rm -rf -- "$old" "$T/${old##*/}"
done
D=$(mktemp -d "$R/p.XXXXXXXX") || exit 3
O=$T/${D##*/}
mkdir -p "$O" || { rm -rf -- "$D"; exit 3; }
cat > "$D/spec" || { rm -rf -- "$D" "$O"; exit 3; }
ak_config= ak_tag= ak_cwd= ak_stdin=0
. "$D/spec"
rm -f -- "$D/spec" # the supervisor has it now; RunDir is small
printf '%s' "$ak_config" > "$D/config"
printf '%s\n' "$ak_tag" > "$D/tag"
if [ -n "$ak_cwd" ] && [ ! -d "$ak_cwd" ]; then
	rm -rf -- "$D" "$O"
	echo "agentkernel: the working directory is not a directory in the sandbox" >&2
	exit 4
fi
mkfifo "$D/stdin" "$D/o" "$D/e" || { rm -rf -- "$D" "$O"; exit 3; }
: > "$O/stdout"; : > "$O/stderr"
ak_pump() {
	ak_n=1 ak_total=0
	exec >>"$1"
	while :; do
		[ "$ak_total" -lt "$cap" ] || exec cat >/dev/null
		LC_ALL=C dd bs=65536 count=1 2>"$1.dd" || break
		ak_in= ak_n=
		{ read -r ak_in _; read -r _; read -r ak_n _; } <"$1.dd" 2>/dev/null
		case $ak_in in
		0+0) break;;
		*+*) ;;
		*) rm -f -- "$1.dd"; exec cat;; # a dd that does not report: keep the output, unbounded
		esac
		case $ak_n in
		''|*[!0-9]*) # busybox's dd counts records, not bytes: ask the file
			ak_n=$(wc -c <"$1") || ak_n=0
			ak_total=$((ak_n + 0));;
		*) ak_total=$((ak_total + ak_n));;
		esac
	done
	rm -f -- "$1.dd"
}
ak_wait() {
	while :; do
		ak_intr=0
		wait "$1"
		ak_r=$?
		[ "$ak_intr" = 1 ] || return "$ak_r"
	done
}
(
	trap 'exec 3>&-; ak_intr=1' USR1
	exec 3<>"$D/stdin" </dev/null 2>/dev/null
	# A function with redirections would keep a saved copy of the
	# exec's stdout in its shell (dash, busybox): a subshell does not.
	(ak_pump "$O/stdout") <"$D/o" >/dev/null 3>&- &
	po=$!
	(ak_pump "$O/stderr") <"$D/e" >/dev/null 3>&- &
	pe=$!
	in=/dev/null
	if [ "$ak_stdin" = 1 ]; then in=$D/stdin; else exec 3>&-; rm -f -- "$D/stdin"; fi
	ak_setsid=
	command -v setsid >/dev/null 2>&1 && ak_setsid=setsid
	(trap - INT QUIT; ak_run) <"$in" >"$D/o" 2>"$D/e" 3>&- &
	pid=$!
	ak_stat "$pid" || ak_st=0
	printf '%s %s\n' "$pid" "$ak_st" > "$D/pid.new" && mv -f -- "$D/pid.new" "$D/pid"
	[ -n "$fmax" ] || printf 'AKPROC %s %s\n' "$pid" "${D##*/}"
	exec >/dev/null
	ak_wait "$pid"
	rc=$?
	ak_wait "$po"
	ak_wait "$pe"
	exec 3>&-
	rm -f -- "$D/stdin" "$D/o" "$D/e"
	printf '%s\n' "$rc" > "$D/exit.new" && mv -f -- "$D/exit.new" "$D/exit"
) </dev/null 2>/dev/null &
ak_stat "$!" || ak_st=0
printf '%s %s\n' "$!" "$ak_st" > "$D/super"
`

// listScript prints every process: a line "AKP ID PID ALIVE SUPERALIVE EXIT
// SIGNAL LEN" (numbers or "-"), then LEN bytes of its config (at most
// maxConfig; longer is not ours).
const listScript = lib + `max=$1
for d in "$R"/p.*; do
	[ -d "$d" ] || continue
	ak_read "$d/pid"; p=${ak_v:--}; a=0
	ak_alive "$ak_v" "$ak_w" && a=1
	ak_read "$d/super"; s=0
	ak_alive "$ak_v" "$ak_w" && s=1
	ak_read "$d/exit"; x=${ak_v:--}
	ak_read "$d/signal"; g=${ak_v:--}
	n=$(wc -c < "$d/config" 2>/dev/null) || n=0
	case $n in *[!0-9\ ]*|'') n=0;; esac
	n=$((n))
	[ "$n" -le "$max" ] || n=0
	printf 'AKP %s %s %s %s %s %s %s\n' "${d##*/}" "$p" "$a" "$s" "$x" "$g" "$n"
	[ "$n" = 0 ] || head -c "$n" "$d/config"
done
`

// outputScript streams a process's output from two offsets: frames "O N" /
// "E N" followed by N bytes of stdout / stderr, then "X EXIT SIGNAL" once
// the process has ended and its output is all read ("X - -": its
// supervisor is gone without an exit status). $1 is the selector, $2 and $3
// the offsets, $4 the largest frame, $5 "follow" to wait for the end or
// "once" to print what there is and "R" (still running).
//
// It polls: sh has no way to wait for a file to grow. The interval grows
// from 10 ms to 500 ms while nothing happens: a short command (most of
// them) is seen to end within a few tens of milliseconds, a long quiet one
// costs two forks a second.
const outputScript = lib + `ak_find "$1" || exit 44
oo=$2 eo=$3 fmax=$4 mode=$5
` + outputLoop

// outputLoop is the output script after its arguments: D and O name the
// process's directories; oo, eo, fmax and mode are set.
const outputLoop = `nap=1
ak_read "$D/super"; sp=$ak_v sst=$ak_w
ak_send() {
	n=$(wc -c < "$O/$1" 2>/dev/null) || n=0
	case $n in *[!0-9\ ]*|'') n=0;; esac
	n=$((n - $2))
	[ "$n" -gt 0 ] || return 1
	[ "$n" -le "$fmax" ] || n=$fmax
	printf '%s %s\n' "$3" "$n"
	tail -c +"$(($2 + 1))" "$O/$1" | head -c "$n"
}
while :; do
	fin=0
	# The exit status counts once the supervisor, which writes it last, is
	# gone: the process itself may have written one.
	if ! ak_alive "$sp" "$sst"; then [ -e "$D/exit" ] && fin=1 || fin=2; fi
	got=0
	while ak_send stdout "$oo" O; do oo=$((oo + n)); got=1; done
	while ak_send stderr "$eo" E; do eo=$((eo + n)); got=1; done
	case $fin in
	1) ak_read "$D/exit"; x=${ak_v:--}; ak_read "$D/signal"; printf 'X %s %s\n' "$x" "${ak_v:--}"; exit 0;;
	2) printf 'X - -\n'; exit 0;;
	esac
	[ "$mode" = follow ] || { printf 'R\n'; exit 0; }
	if [ "$got" = 1 ]; then nap=1; else nap=$((nap + 1)); fi
	case $nap in 1) s=0.01;; 2) s=0.02;; 3) s=0.05;; 4) s=0.1;; 5) s=0.2;; 6) s=0.3;; *) s=0.5;; esac
	sleep "$s" 2>/dev/null || sleep 1
done
`

// startFollowScript is startScript with $3, then the output script in
// follow mode from the start. The pid file is written whole (renamed into
// place), after the process runs: once it is there, the process can be
// signalled, and this shell alone writes to the exec's stdout, so that no
// line of the supervisor's falls inside a frame. A supervisor gone
// without one (killed by something in the sandbox) is exit 3.
const startFollowScript = startScript + `while ! [ -e "$D/pid" ]; do
	ak_read "$D/super"
	ak_alive "$ak_v" "$ak_w" || [ -e "$D/pid" ] || { echo "agentkernel: the process's supervisor ended before the process started" >&2; exit 3; }
	sleep 0.01 2>/dev/null || sleep 1
done
ak_read "$D/pid"
printf 'AKPROC %s %s\n' "$ak_v" "${D##*/}"
oo=0 eo=0 mode=follow
` + outputLoop

// signalScript sends signal $3 (a name; $2 its number) to the process of
// selector $1 and every process in its session: exit 44 no such process,
// 46 it has ended, 47 kill failed with the process alive.
const signalScript = lib + `ak_find "$1" || exit 44
ak_read "$D/pid"
ak_alive "$ak_v" "$ak_w" || exit 46
printf '%s\n' "$2" > "$D/signal"
ak_kill "$3" "$ak_v" && exit 0
ak_alive "$ak_v" "$ak_w" || exit 46
exit 47
`

// inputScript copies its stdin into the process's stdin: 44 no such
// process, 45 its stdin is closed (or it was started without one), 46 it
// has ended. cat is not the last command, which a shell may exec: the
// shell holds the exec's stdout while it copies, as a CRI exec whose
// stdout ends cuts its stdin (containerd#13934).
const inputScript = lib + `ak_find "$1" || exit 44
ak_read "$D/pid"
ak_alive "$ak_v" "$ak_w" || exit 46
[ -p "$D/stdin" ] || exit 45
cat > "$D/stdin"
exit
`

// closeScript closes the process's stdin: its supervisor lets go of the
// FIFO, so that it reads EOF once the writers are gone. Closing a closed
// stdin is no error (as in envd).
const closeScript = lib + `ak_find "$1" || exit 44
ak_read "$D/pid"
ak_alive "$ak_v" "$ak_w" || exit 46
[ -p "$D/stdin" ] || exit 0
rm -f -- "$D/stdin"
ak_read "$D/super"
ak_alive "$ak_v" "$ak_w" && kill -s USR1 "$ak_v"
exit 0
`
