package cmd

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
)

// failingExecutor answers every exec with err; block makes it wait for the
// context instead, as a long-running command does.
type failingExecutor struct {
	err   error
	block bool
}

func (e *failingExecutor) ExecuteWithContext(ctx context.Context, _ *url.URL, _ *restclient.Config, _ io.Reader, _, _ io.Writer, _ bool, _ remotecommand.TerminalSizeQueue) error {
	if e.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return e.err
}

// connectionReset returns the error a real TCP reset gives a reader.
func connectionReset(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Read(make([]byte, 1))    // established on both sides
			_ = c.(*net.TCPConn).SetLinger(0) // close with RST
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Read(make([]byte, 1))
	var opErr *net.OpError
	if !errors.As(err, &opErr) || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("expected a real connection reset, got %#v", err)
	}
	return err
}

// connectionRefused returns the error of dialling a port nobody listens on.
func connectionRefused(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.Dial("tcp", addr)
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "dial" {
		t.Fatalf("expected a dial error, got %#v", err)
	}
	return &url.Error{Op: "Get", URL: "https://" + addr, Err: err}
}

// A connection that breaks mid-command says so (and that the outcome is
// unknown); only a connection that never came up blames the API server.
func TestExecClassifiesConnectionErrors(t *testing.T) {
	cases := map[string]struct {
		err        error
		want, dont string
	}{
		"reset during the command": {connectionReset(t), "the connection to the sandbox broke while the command ran", "cannot reach"},
		"unexpected EOF":           {io.ErrUnexpectedEOF, "broke while the command ran", "cannot reach"},
		"refused before it began":  {connectionRefused(t), "cannot reach the Kubernetes API server", "broke"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tf := clitest.Factory(t, sandboxPod("demo", nil))
			streams, _, _, _ := genericiooptions.NewTestIOStreams()
			o := NewExecOptions(streams)
			o.Executor = &failingExecutor{err: tc.err}
			cmd := newCmdExec(tf, o)
			cmd.SetArgs([]string{"demo", "--", "sleep", "60"})
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.ExecuteContext(context.Background())
			var exit *ExitError
			if err == nil || errors.As(err, &exit) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.dont) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// SIGTERM ends a running exec at once — also when -t was asked for on a
// stdin that is no terminal — and the process exits 143, never 0.
func TestExecEndsOnSignal(t *testing.T) {
	for _, args := range [][]string{{"demo", "--", "sleep", "15"}, {"-it", "demo", "--", "sleep", "15"}} {
		tf := clitest.Factory(t, sandboxPod("demo", nil))
		streams, _, _, errOut := genericiooptions.NewTestIOStreams()
		o := NewExecOptions(streams)
		o.Executor = &failingExecutor{block: true}
		cmd := newCmdExec(tf, o)
		cmd.SetArgs(args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(100*time.Millisecond, func() { cancel(&cli.SignalError{Signal: syscall.SIGTERM}) })
		err := cmd.ExecuteContext(ctx) // the executor blocks until the stream's context ends
		var sig *cli.SignalError
		if !errors.As(err, &sig) {
			t.Fatalf("%v: err = %v", args, err)
		}
		if code, ok := cli.ExitCodeFor(ctx); !ok || code != 143 {
			t.Fatalf("%v: exit code %d", args, code)
		}
		if args[0] == "-it" && !strings.Contains(errOut.String(), "Unable to use a TTY") {
			t.Fatalf("no warning that the terminal was dropped: %q", errOut.String())
		}
	}
}
