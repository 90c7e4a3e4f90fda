package envd

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/procs"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// Every error of procs reaches the SDK as the code it maps to its own
// error, with the sandbox's words made one printable line.
func TestRPCError(t *testing.T) {
	for _, c := range []struct {
		err  error
		code connect.Code
	}{
		{fmt.Errorf("%w: pid 3", procs.ErrNotFound), connect.CodeNotFound},
		{fmt.Errorf("%w: pid 3", procs.ErrEnded), connect.CodeNotFound},
		{fmt.Errorf("%w: pid 3", procs.ErrStdinClosed), connect.CodeFailedPrecondition},
		{fmt.Errorf("%w: 48 running", procs.ErrTooMany), connect.CodeResourceExhausted},
		{field.Invalid("cwd", "the working directory %q is not a directory", "/x"), connect.CodeInvalidArgument},
		{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
		{connect.NewError(connect.CodePermissionDenied, errors.New("no")), connect.CodePermissionDenied},
		{errors.New("exec: stream reset\x1b[2J"), connect.CodeUnavailable},
	} {
		got := rpcError(c.err)
		if connect.CodeOf(got) != c.code {
			t.Errorf("%v became %v, want %v", c.err, connect.CodeOf(got), c.code)
		}
		var ce *connect.Error
		if errors.As(got, &ce) && c.code == connect.CodeUnavailable && ce.Message() != "exec: stream reset?[2J" {
			t.Errorf("message %q", ce.Message())
		}
	}
	if rpcError(nil) != nil {
		t.Error("nil became an error")
	}
}
