package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var resumeExample = templates.Examples(`
	# Bring a suspended sandbox back, with its files, and wait until it runs
	kubectl agentkernel resume demo`)

// ResumeOptions brings suspended persistent sandboxes back.
type ResumeOptions struct {
	Names   []string
	Timeout time.Duration
	Quiet   bool

	cli.Clients
	genericiooptions.IOStreams
}

// NewResumeOptions returns ResumeOptions writing to streams.
func NewResumeOptions(streams genericiooptions.IOStreams) *ResumeOptions {
	return &ResumeOptions{Timeout: cli.DefaultResumeTimeout, IOStreams: streams}
}

// NewCmdResume returns the resume command.
func NewCmdResume(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewResumeOptions(streams)
	cmd := &cobra.Command{
		Use:                   "resume NAME...",
		DisableFlagsInUseLine: true,
		Short:                 "Bring a suspended sandbox back",
		Long: templates.LongDesc(`
			Resume suspended persistent sandboxes: a new Pod, on any node, made from the
			record the sandbox keeps — same image, limits, fence, environment and secrets —
			mounting the same workspace. Like create, it waits until the sandbox can run
			commands, and its new Pod is never without its NetworkPolicy.`),
		Example:           resumeExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE:              cli.CompleteValidateRun(o, func(_ *cobra.Command, args []string) error { return o.Complete(f, args) }),
	}
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for each sandbox to run; 0 waits for ever")
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", o.Quiet, "No progress on stderr")
	return cmd
}

// Complete takes the names and builds clients.
func (o *ResumeOptions) Complete(f cmdutil.Factory, args []string) error {
	o.Names = args
	return o.Clients.Complete(f)
}

// Validate checks the names.
func (o *ResumeOptions) Validate() error {
	return cli.ValidateSandboxNames(o.Names, "resume")
}

// Run resumes each sandbox in turn.
func (o *ResumeOptions) Run(ctx context.Context) error {
	var errs []error
	for _, name := range o.Names {
		report, stop := cli.NewProgress(o.ErrOut, o.Quiet).WaitStatus(ctx, o.Clientset, o.Namespace, name)
		r, err := sandbox.Resume(ctx, o.Clientset, o.Namespace, name, sandbox.ResumeOptions{
			Wait: true, Timeout: o.Timeout, Progress: report, Prepare: o.PrepareEgress(cmdutil.DryRunNone, o.ErrOut), LookupKey: os.LookupEnv,
		})
		stop()
		switch {
		case err != nil:
			errs = append(errs, o.Explain(err, o.Namespace))
		case r.Running:
			fmt.Fprintf(o.Out, "sandbox/%s is running\n", name)
		default:
			fmt.Fprintf(o.Out, "sandbox/%s resumed (%s)\n", name, sandbox.DescribeSuspension(r.Since, r.Why, time.Now()))
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return errors.Join(errs...)
}
