package testexec

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"syscall"

	utilexec "k8s.io/client-go/util/exec"
)

// RunLikeExec runs c (its Stdout and Stderr set by the caller) as the API
// server runs an exec: the stream ends when the command does, whether or
// not stdin has more to say (os/exec's Run would wait for stdin's copy),
// and its status comes back as ExitError makes it.
func RunLikeExec(ctx context.Context, c *exec.Cmd, stdin io.Reader) error {
	var in io.WriteCloser
	if stdin != nil {
		var err error
		if in, err = c.StdinPipe(); err != nil {
			return err
		}
	}
	if err := c.Start(); err != nil {
		return err
	}
	if in != nil {
		go func() {
			_, _ = io.Copy(in, stdin)
			_ = in.Close()
		}()
	}
	return ExitError(ctx, c.Wait())
}

// ExitError is the error a remote exec returns for a command's end: a
// CodeExitError with its status (128+N for signal N, as the container
// runtime reports it); ctx's error when the exec was cancelled.
func ExitError(ctx context.Context, err error) error {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code := exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return utilexec.CodeExitError{Err: err, Code: code}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
