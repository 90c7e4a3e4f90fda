package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

var suspendExample = templates.Examples(`
	# Free the node a persistent sandbox runs on, keeping its files
	kubectl agentkernel suspend demo

	# Suspend several
	kubectl agentkernel suspend demo other`)

// SuspendOptions ends persistent sandboxes' Pods and keeps their work.
type SuspendOptions struct {
	Names   []string
	Timeout time.Duration

	cli.Clients
	genericiooptions.IOStreams
}

// NewSuspendOptions returns SuspendOptions writing to streams.
func NewSuspendOptions(streams genericiooptions.IOStreams) *SuspendOptions {
	return &SuspendOptions{Timeout: 2 * time.Minute, IOStreams: streams}
}

// NewCmdSuspend returns the suspend command.
func NewCmdSuspend(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewSuspendOptions(streams)
	cmd := &cobra.Command{
		Use:                   "suspend NAME...",
		DisableFlagsInUseLine: true,
		Short:                 "Stop a persistent sandbox and keep its work",
		Long: templates.LongDesc(`
			Suspend persistent sandboxes (made with --persist): flush their writes, end
			their Pods (freeing the nodes) and keep everything else — the workspace with
			/workspace and $HOME, the secret environment and the record of how the
			sandbox was made. Bring one back with resume, or just use it: exec, cp,
			shell, attach, logs and port-forward resume a suspended sandbox first.`),
		Example:           suspendExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE:              cli.CompleteValidateRun(o, func(_ *cobra.Command, args []string) error { return o.Complete(f, args) }),
	}
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for each Pod to be gone; 0 waits for ever")
	return cmd
}

// Complete takes the names and builds clients.
func (o *SuspendOptions) Complete(f cmdutil.Factory, args []string) error {
	o.Names = args
	return o.Clients.Complete(f)
}

// Validate checks the names.
func (o *SuspendOptions) Validate() error {
	return cli.ValidateSandboxNames(o.Names, "suspend")
}

// Run suspends each sandbox in turn.
func (o *SuspendOptions) Run(ctx context.Context) error {
	var errs []error
	for _, name := range o.Names {
		s, err := sandbox.Suspend(ctx, o.Clientset, o.Namespace, name, sandbox.SuspendOptions{Flush: o.flush, Timeout: o.Timeout})
		if err != nil {
			errs = append(errs, o.Explain(err, o.Namespace))
			continue
		}
		if s.Already {
			fmt.Fprintf(o.Out, "sandbox/%s was %s\n", name, sandbox.DescribeSuspension(s.Since, s.Why, time.Now()))
			continue
		}
		fmt.Fprintf(o.Out, "sandbox/%s suspended\n", name)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return errors.Join(errs...)
}

// flush runs sync in the sandbox, so every write it acknowledged is on the
// volume before its Pod ends. An image without sync is flushed by the
// volume's unmount alone, which every driver does.
func (o *SuspendOptions) flush(ctx context.Context, pod *corev1.Pod) error {
	var stderr untrusted.Buffer
	err := o.ExecIn(pod).Run(ctx, []string{"sh", "-c", "command -v sync >/dev/null || exit 127; sync"}, nil, io.Discard, &stderr)
	if code, ok := sandbox.ExitCode(err); ok && code == 127 {
		fmt.Fprintf(o.ErrOut, "warning: sandbox %q has no sync; its volume is flushed when it is unmounted\n", sandbox.NameOf(pod))
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w %s", err, untrusted.Line(stderr.String(), 256))
	}
	return nil
}
