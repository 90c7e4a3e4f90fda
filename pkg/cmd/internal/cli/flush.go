package cli

import (
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// FlushWorkspace returns what suspend and snapshot run in a running
// persistent sandbox before its workspace is left alone: `sync`, so every
// write a command saw acknowledged is on the volume. An image without sync
// is said on warn, and its volume is flushed when it is unmounted.
func (c *Clients) FlushWorkspace(warn io.Writer) func(ctx context.Context, pod *corev1.Pod) error {
	return func(ctx context.Context, pod *corev1.Pod) error {
		var stderr untrusted.Buffer
		err := c.ExecIn(pod).Run(ctx, []string{"sh", "-c", "command -v sync >/dev/null || exit 127; sync"}, nil, io.Discard, &stderr)
		if code, ok := sandbox.ExitCode(err); ok && code == 127 {
			fmt.Fprintf(warn, "warning: sandbox %q has no sync; its volume is flushed when it is unmounted\n", sandbox.NameOf(pod))
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w %s", err, untrusted.Line(stderr.String(), 256))
		}
		return nil
	}
}
