package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/cmd/logs"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var logsExample = templates.Examples(`
	# What the sandbox's main process printed
	kubectl agentkernel logs work

	# Follow it, starting with the last 20 lines
	kubectl agentkernel logs work -f --tail 20`)

// LogsOptions prints a sandbox's logs through kubectl's logs machinery.
type LogsOptions struct {
	Name string
	// Logs holds kubectl's own options; their flags are the ones that
	// make sense for a sandbox's one container.
	Logs *logs.LogsOptions

	cli.Clients
	genericiooptions.IOStreams
}

// NewLogsOptions returns LogsOptions writing to streams.
func NewLogsOptions(streams genericiooptions.IOStreams) *LogsOptions {
	return &LogsOptions{Logs: logs.NewLogsOptions(streams), IOStreams: streams}
}

// NewCmdLogs returns the logs command.
func NewCmdLogs(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdLogs(f, NewLogsOptions(streams))
}

func newCmdLogs(f cmdutil.Factory, o *LogsOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "logs NAME [-f] [--tail N] [--since D]",
		DisableFlagsInUseLine: true,
		Short:                 "Print the logs of a sandbox's main process",
		Long: templates.LongDesc(`
			Print what a sandbox's main process wrote to stdout and stderr (create
			--command, run --detach), through kubectl's own logs. A sandbox without a main
			process logs nothing: commands run with exec print to your terminal, not to the
			logs. What comes out is the sandbox's, untrusted: do not pipe it into a shell.`),
		Example:           logsExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE:              cli.CompleteValidateRun(o, func(cmd *cobra.Command, args []string) error { return o.Complete(f, cmd, args) }),
	}
	l := o.Logs
	fl := cmd.Flags()
	fl.BoolVarP(&l.Follow, "follow", "f", l.Follow, "Keep printing as the process writes")
	fl.Int64Var(&l.Tail, "tail", l.Tail, "Lines of recent output to show; -1: all")
	fl.DurationVar(&l.SinceSeconds, "since", l.SinceSeconds, "Only output newer than this, e.g. 5s, 2m, 3h")
	fl.StringVar(&l.SinceTime, "since-time", l.SinceTime, "Only output after this time (RFC3339)")
	fl.BoolVar(&l.Timestamps, "timestamps", l.Timestamps, "Prefix each line with its time")
	fl.Int64Var(&l.LimitBytes, "limit-bytes", l.LimitBytes, "At most this many bytes of output")
	fl.BoolVarP(&l.Previous, "previous", "p", l.Previous, "The output of the previous run of the container, if it restarted")
	cmdutil.AddPodRunningTimeoutFlag(cmd, 20*time.Second)
	o.Resume.AddNoResumeFlag(fl)
	return cmd
}

// Complete takes the sandbox name and turns the flags into kubectl's
// PodLogOptions for the sandbox container.
func (o *LogsOptions) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("logs takes exactly one sandbox name (got %d): kubectl agentkernel logs NAME", len(args))
	}
	o.Name = args[0]
	l := o.Logs
	l.TailSpecified = cmd.Flags().Changed("tail")
	l.Container = sandbox.ContainerName
	l.ConsumeRequestFn = logs.DefaultConsumeRequest
	var err error
	if l.GetPodTimeout, err = cmdutil.GetPodRunningTimeoutFlag(cmd); err != nil {
		return err
	}
	if l.Options, err = l.ToLogOptions(); err != nil {
		return err
	}
	o.Resume.Notice = o.ErrOut
	return o.Clients.Complete(f)
}

// Validate checks the flags as kubectl logs does.
func (o *LogsOptions) Validate() error {
	if err := sandbox.ValidateName(o.Name); err != nil {
		return err
	}
	return o.Logs.Validate()
}

// Run finds the sandbox (never a Pod by name) and streams its logs with
// kubectl's consumer. kubectl logs' own RunLogs is not used: it exits the
// process on Ctrl-C, where the plugin ends the stream and exits 130.
func (o *LogsOptions) Run(ctx context.Context) error {
	pod, err := sandbox.Find(ctx, o.Clientset, o.Namespace, o.Name)
	var gone *sandbox.NotFoundError
	if errors.As(err, &gone) {
		// No Pod: a suspended persistent sandbox is resumed, and its new
		// incarnation's output shown. An ended Pod's output is shown as is.
		pod, err = o.RunningSandbox(ctx, o.Namespace, o.Name)
		if err != nil {
			return err
		}
	}
	if err != nil {
		return o.Explain(err, o.Namespace)
	}
	l := o.Logs
	opts, ok := l.Options.(*corev1.PodLogOptions)
	if !ok {
		return fmt.Errorf("unexpected logs options %T", l.Options)
	}
	// client-go's request for the one container, by the Pod Find vouched for.
	req := o.Clientset.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, opts)
	if l.Follow {
		// As kubectl logs -f: while the API says the container is not
		// there yet, say so and try again, until the pod timeout.
		err = wait.PollUntilContextTimeout(ctx, time.Second, l.GetPodTimeout, true, func(context.Context) (bool, error) {
			err := l.ConsumeRequestFn(ctx, req, o.Out)
			if _, isStatus := err.(apierrors.APIStatus); isStatus && ctx.Err() == nil {
				fmt.Fprintln(o.ErrOut, err.Error())
				return false, nil
			}
			return true, err
		})
	} else {
		err = l.ConsumeRequestFn(ctx, req, o.Out)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil {
		return fmt.Errorf("logs of sandbox %q: %w", o.Name, o.ExplainStream(err, o.Namespace))
	}
	return nil
}
