package sandbox

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A Shell runs commands in a sandbox one after another over one long-lived
// exec stream: a sh in the sandbox reads one command per line from its
// stdin, runs it, and ends its stdout and stderr with a marker that carries
// the exit status. An exec stream costs the API server and the kubelet a
// connection, an upgrade and a process each; a command through a warm Shell
// costs one line each way. For callers that run many short commands (an
// MCP server, a benchmark).
//
// What differs from an exec of its own: a command gets no stdin (use a
// stream for that), and runs under `sh -c` as `exec ARGV` (so a missing
// program is exit 127 with sh's message).
//
// The sandbox is hostile here too. Markers are random per command and
// never appear in any argument list; output is scanned in bounded memory;
// a marker that does not parse breaks the Shell, never the caller. Any
// process of the sandbox's user can read and write the shell's stdin and
// stdout through /proc, so one command could answer for the next: a Shell
// takes a next command only when the sandbox's shell proves, with a secret
// it got before the command started, that no process the command started
// is left (see shellScript). Otherwise it retires after that command: it
// takes no more, and its stream stays open, with nothing read from it
// going anywhere, until the processes left behind end, so that they do
// not die writing to a closed pipe.
type Shell struct {
	stdin  *io.PipeWriter
	stdout *demux
	stderr *demux
	cancel context.CancelFunc

	mu       sync.Mutex // one command at a time
	once     sync.Once
	dead     chan struct{} // closed once the stream has ended
	deadErr  error         // why; set before dead is closed
	lastUsed atomic.Int64  // unix nanoseconds
	running  atomic.Bool
	retired  atomic.Bool

	key string // what the next line must start with (after its END); under mu
}

// Streamer opens an exec stream; *PodExec is one.
type Streamer interface {
	Stream(ctx context.Context, command []string, s Streams) error
}

// shellScript is the sandbox side. $1 is the ready token. Each input line
// is "END KEY NEXT OK WORDS":
//
//   - END ends the command's stdout ("\nEND STATUS VERDICT\n") and stderr
//     ("\nEND\n").
//   - KEY must be the NEXT of the line before ("-" for the first line): a
//     line that some process of the sandbox wrote into the shell's stdin
//     (through /proc/PID/fd/0) does not have it, and the shell exits rather
//     than run it.
//   - OK is the VERDICT when no process the command started is left: then
//     nothing that could read the next line from the shell's stdin exists
//     (short of a process that was there before the command started), and
//     the next command may come. Anything else retires the shell.
//   - WORDS are shell-quoted by quoteWords, so eval sees exactly the
//     argument vector the caller gave, newlines included (as "$__ak_nl").
//
// KEY, NEXT and OK are secrets that live only in the shell's memory: never
// in an argument list or an environment, and unset in the subshell before
// the command's program replaces it.
//
// A process that forks and exits ("hops") could be gone by the time its
// entry in /proc is read, its child not yet listed (a test's stealer,
// which forks into the background and exits, got past one scan now and
// then). But in any one scan it is listed as one pid or the next (pids
// only grow until they wrap), alive or gone: so a scan in which a pid
// that was not there before the command is listed and then gone proves
// nothing, and the shell scans again; five such scans in a row retire it.
// (Other sessions' short-lived processes, a main process's workers, are
// what usually vanishes mid-scan; the next scan mostly misses them.)
//
// A command's processes are the ones alive after it that were not before
// it (by pid and start time, so a reused pid is no disguise), unless they
// belong to a session that a process from before it still belongs to: a
// process cannot join a session, only start one (its own pid, which a
// session still in use never gets) or inherit one, so those are the
// processes of someone else (PID 1, another exec). A process in the shell's
// session, or in session 0 (one that began outside the sandbox's pid
// namespace, which cannot be told apart), always counts. Scanning /proc
// forks nothing: the glob, read, case and set are builtins.
//
// The command runs in a subshell with no stdin; `exec` keeps sh's builtins
// and functions out of its way.
const shellScript = `__ak_nl='
'
__ak_ready=$1
__ak_stat() {
	__ak_s=
	{ while IFS= read -r __ak_l; do __ak_s="$__ak_s$__ak_l "; done < "/proc/$1/stat"; } 2>/dev/null
	case $__ak_s in *') '*) ;; *) return 1;; esac
	set -f
	set -- ${__ak_s##*') '}
	set +f
	__ak_s="${20}:$4"
}
__ak_scan() {
	__ak_ps=' '
	__ak_gone=' '
	for __ak_p in /proc/[0-9]*; do
		__ak_p=${__ak_p#/proc/}
		case $__ak_p in "$$") continue;; esac
		if __ak_stat "$__ak_p"; then __ak_ps="$__ak_ps$__ak_p:$__ak_s "; else __ak_gone="$__ak_gone$__ak_p "; fi
	done
}
__ak_stat $$ || { echo "agentkernel: /proc is not readable here, so the warm shell cannot tell whether a command left processes behind" >&2; exit 3; }
__ak_mysid=${__ak_s#*:}
__ak_key=-
printf 'AK-READY %s\n' "$__ak_ready"
while IFS= read -r __ak_line; do
	__ak_end=${__ak_line%% *}; __ak_line=${__ak_line#* }
	__ak_k=${__ak_line%% *}; __ak_line=${__ak_line#* }
	case $__ak_k in "$__ak_key") ;; *) echo "agentkernel: a line without the shell's key reached its stdin; some process wrote it there" >&2; exit 4;; esac
	__ak_key=${__ak_line%% *}; __ak_line=${__ak_line#* }
	__ak_ok=${__ak_line%% *}; __ak_line=${__ak_line#* }
	__ak_scan; __ak_before=$__ak_ps
	( unset __ak_key __ak_ok __ak_k; eval "exec $__ak_line" ) </dev/null
	__ak_rc=$?
	__ak_try=0
	while :; do
		__ak_scan
		__ak_old=' '
		for __ak_e in $__ak_ps; do
			case $__ak_before in *" ${__ak_e%:*}:"*) __ak_old="$__ak_old${__ak_e##*:} ";; esac
		done
		for __ak_e in $__ak_ps; do
			case $__ak_before in *" ${__ak_e%:*}:"*) continue;; esac
			__ak_sid=${__ak_e##*:}
			case $__ak_sid in 0|"$__ak_mysid") __ak_ok=-; break;; esac
			case $__ak_old in *" $__ak_sid "*) ;; *) __ak_ok=-; break;; esac
		done
		case $__ak_ok in -) break;; esac
		__ak_hop=
		for __ak_p in $__ak_gone; do
			case $__ak_before in *" $__ak_p:"*) ;; *) __ak_hop=1; break;; esac
		done
		case $__ak_hop in '') break;; esac
		__ak_try=$((__ak_try + 1))
		case $__ak_try in 5) __ak_ok=-; break;; esac
	done
	printf '\n%s %d %s\n' "$__ak_end" "$__ak_rc" "$__ak_ok"
	printf '\n%s\n' "$__ak_end" >&2
done`

// ErrShellBusy: the Shell is running another command.
var ErrShellBusy = errors.New("the shell is busy")

// ShellBrokenError: the Shell's stream ended or the sandbox broke the
// protocol. Sent reports whether the command had been handed to the
// sandbox: if not, it never ran and may go another way.
type ShellBrokenError struct {
	Err  error
	Sent bool
}

func (e *ShellBrokenError) Error() string {
	if e.Sent {
		return "the connection to the sandbox broke while the command ran (" + e.Err.Error() + "); its outcome is unknown"
	}
	return "the sandbox's shell is gone: " + e.Err.Error()
}

func (e *ShellBrokenError) Unwrap() error { return e.Err }

// StartShell opens the stream and waits until the sandbox's shell answers.
// The Shell lives until Close, or until parent ends.
func StartShell(ctx, parent context.Context, s Streamer) (*Shell, error) {
	streamCtx, cancel := context.WithCancel(parent)
	ready := token("AK-READY")
	pr, pw := io.Pipe()
	sh := &Shell{
		stdin:  pw,
		stdout: &demux{},
		stderr: &demux{},
		cancel: cancel,
		dead:   make(chan struct{}),
		key:    "-",
	}
	sh.lastUsed.Store(time.Now().UnixNano())
	readyNeedle := []byte("AK-READY " + ready + "\n")
	readyCh := sh.stdout.expect(readyNeedle, false, io.Discard)
	go func() {
		err := s.Stream(streamCtx, []string{"sh", "-c", shellScript, "sh", ready}, Streams{Stdin: pr, Stdout: sh.stdout, Stderr: sh.stderr})
		if err == nil {
			err = errors.New("the shell exited")
		}
		sh.die(err)
		pr.CloseWithError(err)
	}()
	select {
	case r := <-readyCh:
		if r.err != nil {
			return nil, &ShellBrokenError{Err: r.err}
		}
		return sh, nil
	case <-sh.dead:
		return nil, &ShellBrokenError{Err: sh.deadErr}
	case <-ctx.Done():
		sh.Close()
		return nil, ctx.Err()
	}
}

func (sh *Shell) die(err error) {
	sh.stdout.fail(err)
	sh.stderr.fail(err)
	sh.once.Do(func() {
		sh.deadErr = err
		close(sh.dead)
	})
}

// errRetired: a command left processes behind.
var errRetired = errors.New("a command left processes running, which could read the shell's stdin; it takes no more commands")

// retire takes no more commands, and ends the sandbox's shell (its stdin
// ends), but leaves the stream to drain until the processes left behind
// close it.
func (sh *Shell) retire() {
	sh.retired.Store(true)
	sh.die(errRetired)
	_ = sh.stdin.Close()
}

// Close ends the stream; a command still running in the sandbox may go on.
// A retired Shell's stream is left to end by itself (or with parent).
func (sh *Shell) Close() {
	if sh.retired.Load() {
		return
	}
	err := errors.New("the shell was closed")
	sh.die(err) // at once: the stream may take a moment to end
	sh.cancel()
	_ = sh.stdin.CloseWithError(err)
}

// Alive reports whether the Shell's stream is up, and how long ago its
// last command ended (0 while one runs). It never waits for a command.
func (sh *Shell) Alive() (bool, time.Duration) {
	select {
	case <-sh.dead:
		return false, 0
	default:
	}
	if sh.running.Load() {
		return true, 0
	}
	return true, time.Since(time.Unix(0, sh.lastUsed.Load()))
}

// Run runs command (an argument vector, as for an exec) and returns its
// exit status. It returns ErrShellBusy at once if another command runs; a
// *ShellBrokenError if the stream broke (Sent tells whether the command
// could have run); ctx's error if ctx ended first, after which the Shell
// is closed (the command may still run in the sandbox).
func (sh *Shell) Run(ctx context.Context, command []string, stdout, stderr io.Writer) (int, error) {
	if len(command) == 0 {
		return 0, errors.New("no command")
	}
	line, err := quoteWords(command)
	if err != nil {
		return 0, err
	}
	if !sh.mu.TryLock() {
		return 0, ErrShellBusy
	}
	defer sh.mu.Unlock()
	sh.running.Store(true)
	defer func() {
		sh.lastUsed.Store(time.Now().UnixNano())
		sh.running.Store(false)
	}()
	select {
	case <-sh.dead:
		return 0, &ShellBrokenError{Err: sh.deadErr}
	default:
	}
	end, next, ok := token("AK-END"), secret(), secret()
	outDone := sh.stdout.expect([]byte("\n"+end+" "), true, stdout)
	errDone := sh.stderr.expect([]byte("\n"+end+"\n"), false, stderr)
	if _, err := io.WriteString(sh.stdin, end+" "+sh.key+" "+next+" "+ok+" "+line+"\n"); err != nil {
		sh.Close()
		return 0, &ShellBrokenError{Err: err}
	}
	sh.key = next
	var code int
	var verdict []byte
	for outDone != nil || errDone != nil {
		select {
		case r := <-outDone:
			if r.err != nil {
				sh.die(r.err)
				sh.Close()
				return 0, &ShellBrokenError{Err: r.err, Sent: true}
			}
			code, verdict, outDone = r.code, r.verdict, nil
		case r := <-errDone:
			if r.err != nil {
				sh.die(r.err)
				sh.Close()
				return 0, &ShellBrokenError{Err: r.err, Sent: true}
			}
			errDone = nil
		case <-ctx.Done():
			// What the command wrote so far is the caller's; nothing after.
			sh.stdout.detach()
			sh.stderr.detach()
			sh.Close()
			return 0, ctx.Err()
		}
	}
	if subtle.ConstantTimeCompare(verdict, []byte(ok)) != 1 {
		// The command's own result stands: a command can always lie about
		// its own work. What it left behind gets no later command to read.
		sh.retire()
	}
	return code, nil
}

func token(prefix string) string { return prefix + "-" + RandomHex(16) }

// secret is a token without a prefix: one that only the client and the
// sandbox's shell know.
func secret() string { return RandomHex(16) }

// quoteWords shell-quotes an argument vector into one line.
func quoteWords(words []string) (string, error) {
	var b strings.Builder
	for i, w := range words {
		if strings.ContainsRune(w, 0) {
			return "", errors.New("an argument contains a NUL byte")
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('\'')
		for i := 0; i < len(w); i++ { // bytes, not runes: any bytes travel as they are
			switch c := w[i]; c {
			case '\'':
				b.WriteString(`'\''`)
			case '\n':
				b.WriteString(`'"$__ak_nl"'`)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('\'')
	}
	return b.String(), nil
}

// demux passes one stream of the Shell to the current command's writer
// until that command's marker, and drops what comes between commands.
type demux struct {
	mu      sync.Mutex
	needle  []byte
	code    bool // the marker goes on with an exit status, maybe a verdict, and a newline
	sink    io.Writer
	pending []byte // a tail that may be the start of the marker
	status  []byte // the status line read so far
	inCode  bool
	done    chan result
	err     error
}

type result struct {
	code    int
	verdict []byte // after the exit status; nil if none
	err     error
}

// maxStatus bounds the exit status digits the sandbox may send, and
// maxVerdict what may follow them.
const (
	maxStatus  = 10
	maxVerdict = 64
)

// expect makes the next marker needle end the output that goes to sink.
func (d *demux) expect(needle []byte, code bool, sink io.Writer) chan result {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := make(chan result, 1)
	if d.err != nil {
		ch <- result{err: d.err}
		return ch
	}
	d.needle, d.code, d.sink, d.done = needle, code, sink, ch
	d.pending, d.status, d.inCode = d.pending[:0], d.status[:0], false
	return ch
}

func (d *demux) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		d.err = err
	}
	if d.done != nil {
		d.done <- result{err: err}
		d.done, d.sink = nil, nil
	}
}

// detach hands the current command's sink what is held back, and writes
// nothing to it after.
func (d *demux) detach() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done != nil && !d.inCode {
		_, _ = d.sink.Write(d.pending)
	}
	d.done, d.sink, d.pending = nil, nil, nil
}

// Write never fails: a stream writer that failed would end the stream.
func (d *demux) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(p)
	for len(p) > 0 && d.done != nil {
		if d.inCode {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				d.status = append(d.status, p...)
				p = nil
			} else {
				d.status = append(d.status, p[:i]...)
				p = p[i+1:]
				d.finish()
				continue
			}
			if len(d.status) > maxStatus+1+maxVerdict {
				d.finishWith(fmt.Errorf("the sandbox's shell sent a malformed exit status"))
			}
			continue
		}
		buf := append(d.pending, p...)
		p = nil
		if i := bytes.Index(buf, d.needle); i >= 0 {
			_, _ = d.sink.Write(buf[:i])
			rest := buf[i+len(d.needle):]
			d.pending = d.pending[:0]
			if d.code {
				d.inCode = true
				p = append([]byte(nil), rest...)
				continue
			}
			d.finish()
			continue // what follows belongs to no command
		}
		keep := min(len(buf), len(d.needle)-1)
		_, _ = d.sink.Write(buf[:len(buf)-keep])
		d.pending = append(d.pending[:0], buf[len(buf)-keep:]...)
	}
	return n, nil
}

func (d *demux) finish() {
	d.sink = nil
	if !d.code {
		d.finishWith(nil)
		return
	}
	code, verdict, ok := parseStatus(d.status)
	if !ok {
		d.finishWith(fmt.Errorf("the sandbox's shell sent a malformed exit status"))
		return
	}
	d.done <- result{code: code, verdict: verdict}
	d.done = nil
}

// parseStatus reads "STATUS" or "STATUS VERDICT": decimal digits, and
// letters or digits.
func parseStatus(line []byte) (code int, verdict []byte, ok bool) {
	digits, rest, hasVerdict := bytes.Cut(line, []byte(" "))
	if len(digits) == 0 || len(digits) > maxStatus {
		return 0, nil, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, nil, false
		}
	}
	code, err := strconv.Atoi(string(digits))
	if err != nil {
		return 0, nil, false
	}
	if hasVerdict {
		if len(rest) == 0 || len(rest) > maxVerdict {
			return 0, nil, false
		}
		for _, c := range rest {
			if !isVerdictByte(c) {
				return 0, nil, false
			}
		}
		verdict = append([]byte(nil), rest...)
	}
	return code, verdict, true
}

func (d *demux) finishWith(err error) {
	if err != nil && d.err == nil {
		d.err = err
	}
	d.done <- result{err: err}
	d.done, d.sink = nil, nil
}

// isVerdictByte: the verdict is a token of letters, digits and '-'.
func isVerdictByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-'
}
