package sandbox

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// What a one-shot `run` needs beyond Create: a set-up script (an agent's
// install step). Removing everything at the end is Created.Delete.

// RunSetup runs a shell script in the sandbox (an agent's install step) and
// keeps what it prints, bounded and stripped of control characters, for the
// error if it fails.
func RunSetup(ctx context.Context, r Runner, script string) error {
	var out untrusted.Buffer
	err := r.Run(ctx, []string{"sh", "-c", script}, nil, &out, &out)
	if err == nil {
		return nil
	}
	msg := tail(strings.TrimSpace(out.String()), 2000)
	if code, ok := ExitCode(err); ok {
		if msg == "" {
			return fmt.Errorf("exit code %d", code)
		}
		return fmt.Errorf("exit code %d: %s", code, msg)
	}
	return err
}

// tail keeps the last n bytes of s, where the error usually is.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + strings.ToValidUTF8(s[len(s)-n:], "")
}
