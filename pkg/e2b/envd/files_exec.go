package envd

import (
	"context"
	"errors"
	"io"
	"strconv"

	"connectrpc.com/connect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// errNoSandbox: the server in front routed a request here without its
// sandbox, a bug of ours rather than the caller's.
var errNoSandbox = errors.New("the request reached envd without its sandbox; this is a bug in agentkernel serve")

// scriptResult is how a sandbox script ended.
type scriptResult struct {
	code   int  // its exit status, when exited
	exited bool // false: the exec itself failed (err says why)
	err    error
	stderr string // printable, bounded
}

// runScript runs `sh -c script sh args...` in the request's sandbox.
func runScript(ctx context.Context, script string, args []string, stdin io.Reader, stdout io.Writer) scriptResult {
	sb, ok := SandboxFrom(ctx)
	if !ok || sb.Exec == nil {
		return scriptResult{err: errNoSandbox}
	}
	return runScriptIn(ctx, sb.Exec, script, args, stdin, stdout)
}

func runScriptIn(ctx context.Context, ex *sandbox.PodExec, script string, args []string, stdin io.Reader, stdout io.Writer) scriptResult {
	var stderr untrusted.Buffer
	stderr.Max = 4 << 10
	if stdout == nil {
		stdout = io.Discard
	}
	err := ex.Stream(ctx, append([]string{"sh", "-c", script, "sh"}, args...), sandbox.Streams{Stdin: stdin, Stdout: stdout, Stderr: &stderr})
	r := scriptResult{err: err, stderr: untrusted.Truncate(stderr.String(), 1024)}
	if err == nil {
		r.exited = true
		return r
	}
	if code, ok := sandbox.ExitCode(err); ok {
		r.code, r.exited = code, true
	}
	return r
}

// ok reports whether the script exited 0.
func (r scriptResult) ok() bool { return r.exited && r.code == 0 }

// connectError is a failed script as the SDK's error: a failed exec is
// Unavailable (the SDK says the sandbox is gone or timed out), a script's
// unexpected failure Internal with what it printed.
func (r scriptResult) connectError(what string) *connect.Error {
	if !r.exited {
		if errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded) {
			return connect.NewError(connect.CodeCanceled, errors.New(what+": the request ended"))
		}
		if errors.Is(r.err, errNoSandbox) {
			return connect.NewError(connect.CodeInternal, r.err)
		}
		return connect.NewError(connect.CodeUnavailable, errors.New(what+": the sandbox did not answer: "+untrusted.Printable(r.err.Error())))
	}
	msg := what + ": the sandbox's shell exited " + strconv.Itoa(r.code)
	if r.stderr != "" {
		msg += ": " + r.stderr
	}
	return connect.NewError(connect.CodeInternal, errors.New(msg))
}
