package cli

import (
	"fmt"
	"io"
	"os"

	dockerterm "github.com/moby/term"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/kubectl/pkg/util/interrupt"
	"k8s.io/kubectl/pkg/util/term"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Terminal decides, as kubectl exec and attach do, whether the session gets
// a terminal: -t with -i, on a stdin that really is one. It returns the TTY
// to run the stream under (term.TTY.Safe restores the local terminal on
// every way out) and the streams to send.
func Terminal(in io.Reader, out, errOut io.Writer, stdin, tty, quiet bool) (term.TTY, sandbox.Streams) {
	s := sandbox.Streams{Stdout: out, Stderr: errOut}
	t := term.TTY{Out: out, Parent: KeepRunning()}
	if !stdin {
		return t, s
	}
	s.Stdin, t.In = in, in
	if !tty {
		return t, s
	}
	if !t.IsTerminalIn() {
		if !quiet && errOut != nil {
			fmt.Fprintln(errOut, "Unable to use a TTY - input is not a terminal or the right kind of file")
		}
		return t, s
	}
	t.Raw = true
	// The right handles for a terminal on Windows; os.Stdin/os.Stdout elsewhere.
	stdinTerm, stdoutTerm, _ := dockerterm.StdStreams()
	s.Stdin, t.In = stdinTerm, stdinTerm
	if out != nil {
		s.Stdout, t.Out = stdoutTerm, stdoutTerm
	}
	s.TTY = true
	s.SizeQueue = sizeQueue{t.MonitorSize(t.GetSize())}
	return t, s
}

// KeepRunning is the interrupt handler a raw terminal runs under: a signal
// restores the terminal and nothing more. Without it kubectl's handler
// exits the process with status 1 on the spot; with it the signal cancels
// the command's context (WithSignals) and the command ends with 130/143.
func KeepRunning() *interrupt.Handler {
	return interrupt.New(func(os.Signal) {})
}

// sizeQueue adapts kubectl's terminal size queue to client-go's.
type sizeQueue struct{ q term.TerminalSizeQueue }

func (a sizeQueue) Next() *remotecommand.TerminalSize {
	next := a.q.Next()
	if next == nil {
		return nil
	}
	return &remotecommand.TerminalSize{Width: next.Width, Height: next.Height}
}
