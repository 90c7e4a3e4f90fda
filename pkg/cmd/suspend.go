package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
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
		s, err := sandbox.Suspend(ctx, o.Clientset, o.Namespace, name, sandbox.SuspendOptions{Flush: o.FlushWorkspace(o.ErrOut), Timeout: o.Timeout})
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
