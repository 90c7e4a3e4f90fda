package cmd

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var execExample = templates.Examples(`
	# Run a command; the exit code is the command's own
	kubectl agentkernel exec demo -- make test

	# An interactive shell with a terminal
	kubectl agentkernel exec -it demo -- sh

	# Pipe data in, with extra environment and a working directory
	git diff | kubectl agentkernel exec -i demo -e MODE=review -w /workspace/repo -- sh -c 'git apply && make'`)

// ExecOptions runs a command in a sandbox.
type ExecOptions struct {
	Name    string
	Command []string
	Stdin   bool
	TTY     bool
	Env     []string
	Workdir string
	Quiet   bool

	cli.Clients
	genericiooptions.IOStreams
}

// NewExecOptions returns ExecOptions writing to streams.
func NewExecOptions(streams genericiooptions.IOStreams) *ExecOptions {
	return &ExecOptions{IOStreams: streams}
}

// NewCmdExec returns the exec command.
func NewCmdExec(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdExec(f, NewExecOptions(streams))
}

// newCmdExec lets tests supply options with a recording executor.
func newCmdExec(f cmdutil.Factory, o *ExecOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "exec NAME [-i] [-t] [-e K=V] [-w DIR] -- COMMAND [args...]",
		DisableFlagsInUseLine: true,
		Short:                 "Run a command in a sandbox",
		Long: templates.LongDesc(`
			Run a command in a sandbox, through kubectl's own exec (raw terminal, resize,
			WebSocket with SPDY fallback). The exit code is the command's exact exit code;
			a failure of the plugin or the connection exits non-zero with an error.

			Values given with -e travel in the exec request: do not pass secrets that way,
			use 'create --secret-env' instead.`),
		Example:           execExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE:              cli.CompleteValidateRun(o, func(cmd *cobra.Command, args []string) error { return o.Complete(f, cmd, args) }),
	}
	cmd.Flags().BoolVarP(&o.Stdin, "stdin", "i", o.Stdin, "Pass stdin to the command")
	cmd.Flags().BoolVarP(&o.TTY, "tty", "t", o.TTY, "Allocate a terminal (with -i, when stdin is a terminal)")
	cmd.Flags().StringArrayVarP(&o.Env, "env", "e", o.Env, "Set an environment variable for the command (K=V, repeatable)")
	cmd.Flags().StringVarP(&o.Workdir, "workdir", "w", o.Workdir, "Working directory for the command (default: /workspace)")
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", o.Quiet, "Only print the command's own output")
	o.Resume.AddNoResumeFlag(cmd.Flags())
	return cli.SpeakFlags(cmd)
}

// Complete takes the sandbox name and the command after "--".
func (o *ExecOptions) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	dash := cmd.ArgsLenAtDash()
	switch {
	case len(args) == 0:
		return fmt.Errorf("exec needs a sandbox name and a command: kubectl agentkernel exec NAME -- COMMAND [args...]")
	case dash < 0:
		command := "COMMAND"
		if len(args) > 1 {
			command = strings.Join(args[1:], " ")
		}
		return fmt.Errorf("put '--' between the sandbox name and the command: kubectl agentkernel exec %s -- %s", args[0], command)
	case dash != 1:
		return fmt.Errorf("exec takes exactly one sandbox name before '--' (got %d)", dash)
	}
	o.Name = args[0]
	o.Command = args[1:]
	o.Resume.Notice = o.ErrOut
	return o.Clients.Complete(f)
}

// Validate checks the arguments without contacting the cluster.
func (o *ExecOptions) Validate() error {
	if err := sandbox.ValidateName(o.Name); err != nil {
		return err
	}
	if len(o.Command) == 0 {
		return fmt.Errorf("no command after '--': kubectl agentkernel exec %s -- COMMAND [args...]", o.Name)
	}
	if o.TTY && !o.Stdin {
		return fmt.Errorf("-t needs -i: a terminal without input is no use (kubectl agentkernel exec -it %s -- ...)", o.Name)
	}
	return sandbox.ValidateEnvPairs(o.Env)
}

// Run streams the command and returns an *ExitError carrying its exit code.
// A signal ends the stream at once, in raw mode too (Ctrl-C itself is then
// a byte for the sandbox, but a SIGTERM from a harness is not), and the
// local terminal is restored on every way out.
func (o *ExecOptions) Run(ctx context.Context) error {
	pod, err := o.RunningSandbox(ctx, o.Namespace, o.Name)
	if err != nil {
		return err
	}
	t, streams := cli.Terminal(o.In, o.Out, o.ErrOut, o.Stdin, o.TTY, o.Quiet)
	command := sandbox.ExecCommand(o.Command, o.Env, o.Workdir)
	err = t.Safe(func() error { return o.ExecIn(pod).Stream(ctx, command, streams) })
	if code, ok := sandbox.ExitCode(err); ok {
		return &ExitError{Code: code}
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("exec in sandbox %q failed: %w", o.Name, o.ExplainStream(err, o.Namespace))
	}
	return nil
}
