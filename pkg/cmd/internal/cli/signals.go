package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// SignalError is the cause of a context cancelled by a signal.
type SignalError struct{ Signal os.Signal }

func (e *SignalError) Error() string { return "interrupted by " + signalName(e.Signal) }

// ExitCode is a shell's status for a command killed by the signal:
// 130 for SIGINT, 143 for SIGTERM.
func (e *SignalError) ExitCode() int {
	if s, ok := e.Signal.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 130
}

func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// WithSignals returns a context that the first SIGINT or SIGTERM cancels,
// with a *SignalError as its cause. It carries a cleanup context (see
// sandbox.WithCleanupContext) that a second signal cancels: the first
// interrupt stops the work and lets the command tidy up, the second stops
// the tidying too. stop releases the signals.
func WithSignals(parent context.Context) (ctx context.Context, stop func()) {
	work, cancelWork := context.WithCancelCause(parent)
	cleanup, cancelCleanup := context.WithCancelCause(context.WithoutCancel(parent))
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			select {
			case s := <-ch:
				if n == 0 {
					cancelWork(&SignalError{s})
				} else {
					cancelCleanup(&SignalError{s})
				}
			case <-done:
				return
			}
		}
	}()
	return sandbox.WithCleanupContext(work, cleanup), func() {
		signal.Stop(ch)
		close(done)
		cancelWork(nil)
		cancelCleanup(nil)
	}
}

// ExitCodeFor is the status of a command whose context ended with cause.
func ExitCodeFor(ctx context.Context) (int, bool) {
	if sig, ok := context.Cause(ctx).(*SignalError); ok {
		return sig.ExitCode(), true
	}
	if ctx.Err() != nil {
		return 130, true
	}
	return 0, false
}
