package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// loginShellScript starts the sandbox user's login shell in /workspace:
// $SHELL as the image sets it, sh when it is unset or not there.
const loginShellScript = `cd "$0" 2>/dev/null || cd 2>/dev/null
s=${SHELL:-/bin/sh}
command -v "$s" >/dev/null 2>&1 || s=sh
exec "$s" -l`

var shellExample = templates.Examples(`
	# A login shell in the sandbox, in /workspace
	kubectl agentkernel shell demo`)

// ShellOptions opens an interactive login shell in a sandbox.
type ShellOptions struct {
	Name  string
	Quiet bool

	cli.Clients
	genericiooptions.IOStreams
}

// NewShellOptions returns ShellOptions writing to streams.
func NewShellOptions(streams genericiooptions.IOStreams) *ShellOptions {
	return &ShellOptions{IOStreams: streams}
}

// NewCmdShell returns the shell command.
func NewCmdShell(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdShell(f, NewShellOptions(streams))
}

func newCmdShell(f cmdutil.Factory, o *ShellOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "shell NAME",
		DisableFlagsInUseLine: true,
		Short:                 "Open an interactive login shell in a sandbox",
		Long: templates.LongDesc(`
			Open a login shell in a sandbox, in /workspace: the image's $SHELL, or sh. It
			is 'exec -it NAME -- $SHELL -l' through kubectl's exec (raw terminal, resize,
			the local terminal restored on every way out); the exit code is the shell's.`),
		Example:           shellExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("shell takes exactly one sandbox name (got %d): kubectl agentkernel shell NAME", len(args))
			}
			o.Name = args[0]
			if err := sandbox.ValidateName(o.Name); err != nil {
				return err
			}
			if err := o.Complete(f); err != nil {
				return err
			}
			o.Resume.Notice = o.ErrOut
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", o.Quiet, "Only print the shell's own output")
	o.Resume.AddNoResumeFlag(cmd.Flags())
	return cli.SpeakFlags(cmd)
}

// Run streams the shell; its exit code comes back as an *ExitError.
func (o *ShellOptions) Run(ctx context.Context) error {
	exec := &ExecOptions{
		Name:      o.Name,
		Command:   []string{"sh", "-c", loginShellScript, sandbox.WorkspaceDir},
		Stdin:     true,
		TTY:       true,
		Quiet:     o.Quiet,
		Clients:   o.Clients,
		IOStreams: o.IOStreams,
	}
	return exec.Run(ctx)
}
