package procs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// A process in a terminal cannot be kept by the sandbox as the others
// are: with no binary of ours there, only an exec with a TTY gives it a
// terminal, so it lives exactly as long as the exec stream its caller
// holds. PrepareTerminal puts its spec (with its environment) in the
// sandbox, off any argument list, and returns the command of that exec;
// TerminalPID reads its PID from the exec's first output; SignalTerminal
// signals it.

// ttyScript runs the spec prepared as $R/tty.$1, printing "AKTTY $1 PID"
// first (PID: its own, which the program keeps by exec). The exec's
// terminal makes it the leader of a session of its own.
const ttyScript = lib + `f=$R/tty.$1
[ -f "$f" ] || exit 44
ak_setsid=
ak_config= ak_tag= ak_cwd= ak_stdin=0
. "$f"
rm -f -- "$f"
printf 'AKTTY %s %s\n' "$1" "$$"
ak_run
`

const prepareScript = lib + `umask 077
mkdir -p "$R" && cat > "$R/tty.$1"
`

// PrepareTerminal writes spec into the sandbox and returns the command a
// TTY exec runs it with, and the token TerminalPID looks for.
func (p *Procs) PrepareTerminal(ctx context.Context, spec Spec) (command []string, token string, err error) {
	script, err := specScript(spec)
	if err != nil {
		return nil, "", err
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, "", err
	}
	token = hex.EncodeToString(b[:])
	var errOut untrusted.Buffer
	errOut.Max = 2048
	if err := p.Exec.Run(ctx, p.command(prepareScript, token), strings.NewReader(script), nil, &errOut); err != nil {
		return nil, "", fmt.Errorf("preparing the terminal's process in the sandbox: %w (%s)", err, untrusted.Line(errOut.String(), 300))
	}
	return p.command(ttyScript, token), token, nil
}

// TerminalPID reads the terminal's output up to the line with token and
// the PID (at most 4 KiB, and the "\r\n" the terminal ends it with), and
// returns the PID. What follows is the program's.
func TerminalPID(r *bufio.Reader, token string) (int, error) {
	var seen bytes.Buffer
	marker := "AKTTY " + token + " "
	for seen.Len() < 4096 {
		c, err := r.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("the terminal ended before its process started: %q", untrusted.Line(seen.String(), 200))
		}
		seen.WriteByte(c)
		if c != '\n' {
			continue
		}
		line := strings.TrimRight(seen.String(), "\r\n")
		if i := strings.Index(line, marker); i >= 0 {
			if pid, ok := number(line[i+len(marker):]); ok && pid > 0 {
				return pid, nil
			}
		}
		seen.Reset()
	}
	return 0, fmt.Errorf("the terminal did not say which process it runs")
}

const discardScript = lib + `rm -f -- "$R/tty.$1"
`

// DiscardTerminal removes the spec PrepareTerminal wrote (with its
// environment) when no terminal ran it.
func (p *Procs) DiscardTerminal(ctx context.Context, token string) error {
	return p.Exec.Run(ctx, p.command(discardScript, token), nil, io.Discard, io.Discard)
}

const killScript = lib + `p=${1#pid:}
ak_kill "$2" "$p" 2>/dev/null || exit 46
`

// SignalTerminal sends sig to a terminal's process (and its session):
// ErrEnded if there is no such process.
func (p *Procs) SignalTerminal(ctx context.Context, pid int, sig Signal) error {
	name, ok := signalNames[sig]
	if !ok || pid <= 0 {
		return fmt.Errorf("signal %d to pid %d cannot be sent", sig, pid)
	}
	return p.control(ctx, Selector{PID: pid}, killScript, nil, "signalling", name)
}

// ExitWith is how a process ended that exited with code, after this
// package sent it sent (0: nothing).
func ExitWith(code int, sent Signal) Exit { return exitOf(code, int(sent)) }
