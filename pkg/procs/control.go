package procs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// Signal sends sig to the process sel names and to every process it
// started (its session, where the image has setsid; otherwise the process
// alone): ErrNotFound, or ErrEnded once it has ended.
func (p *Procs) Signal(ctx context.Context, sel Selector, sig Signal) error {
	name, ok := signalNames[sig]
	if !ok {
		return fmt.Errorf("signal %d is not one a process can be sent here (TERM, KILL, INT, HUP)", sig)
	}
	return p.control(ctx, sel, signalScript, nil, "signalling", strconv.Itoa(int(sig)), name)
}

// SendInput writes data to the stdin of the process sel names:
// ErrStdinClosed if it has none (started without, or closed).
func (p *Procs) SendInput(ctx context.Context, sel Selector, data []byte) error {
	return p.control(ctx, sel, inputScript, bytes.NewReader(data), "writing to the stdin of")
}

// CloseStdin closes the stdin of the process sel names: it reads EOF once
// what was sent is read. Closing it again is no error.
func (p *Procs) CloseStdin(ctx context.Context, sel Selector) error {
	return p.control(ctx, sel, closeScript, nil, "closing the stdin of")
}

func (p *Procs) control(ctx context.Context, sel Selector, script string, stdin io.Reader, doing string, args ...string) error {
	arg, err := sel.arg()
	if err != nil {
		return err
	}
	var errOut untrusted.Buffer
	errOut.Max = 2048
	err = p.Exec.Run(ctx, p.command(script, append([]string{arg}, args...)...), stdin, io.Discard, &errOut)
	if code, ok := sandbox.ExitCode(err); ok {
		switch code {
		case 44:
			return fmt.Errorf("%w: %s", ErrNotFound, sel)
		case 45:
			return fmt.Errorf("%w: %s", ErrStdinClosed, sel)
		case 46:
			return fmt.Errorf("%w: %s", ErrEnded, sel)
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w (%s)", doing, sel, err, untrusted.Line(errOut.String(), 300))
	}
	return nil
}
