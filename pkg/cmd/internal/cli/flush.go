package cli

import (
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// FlushWorkspace returns what suspend and snapshot run in a running
// persistent sandbox before its workspace is left alone: `sync`, so every
// write a command saw acknowledged is on the volume. An image without sync
// is said on warn, and its volume is flushed when it is unmounted.
func (c *Clients) FlushWorkspace(warn io.Writer) func(ctx context.Context, pod *corev1.Pod) error {
	return func(ctx context.Context, pod *corev1.Pod) error {
		noSync, err := sandbox.Flush(ctx, c.ExecIn(pod))
		if noSync {
			fmt.Fprintf(warn, "warning: sandbox %q has no sync; its volume is flushed when it is unmounted\n", sandbox.NameOf(pod))
		}
		return err
	}
}
