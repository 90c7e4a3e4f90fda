package cmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"
)

// completionShells maps each supported shell to the cobra generator for it.
var completionShells = map[string]func(root *cobra.Command, out io.Writer, descriptions bool) error{
	"bash": func(root *cobra.Command, out io.Writer, descriptions bool) error {
		return root.GenBashCompletionV2(out, descriptions)
	},
	"zsh": func(root *cobra.Command, out io.Writer, descriptions bool) error {
		if descriptions {
			return root.GenZshCompletion(out)
		}
		return root.GenZshCompletionNoDesc(out)
	},
	"fish": func(root *cobra.Command, out io.Writer, descriptions bool) error {
		return root.GenFishCompletion(out, descriptions)
	},
	"powershell": func(root *cobra.Command, out io.Writer, descriptions bool) error {
		if descriptions {
			return root.GenPowerShellCompletionWithDesc(out)
		}
		return root.GenPowerShellCompletion(out)
	},
}

var completionLong = templates.LongDesc(`
	Print a shell completion script for kubectl-agentkernel.

	There are two ways to complete this plugin, and both end in the same
	dynamic completion (sandbox names come from the cluster):

	* "kubectl agentkernel <TAB>": kubectl 1.26 or newer completes plugins by
	  running the helper kubectl_complete-agentkernel, which ships in every
	  release archive. Put it on your PATH next to kubectl-agentkernel and
	  enable kubectl's own completion (kubectl completion --help).

	* "kubectl-agentkernel <TAB>": load the script this command prints.`)

var completionExample = templates.Examples(`
	# Load bash completion for kubectl-agentkernel in the current shell
	source <(kubectl agentkernel completion bash)

	# Install zsh completion for every new shell
	kubectl agentkernel completion zsh > "${fpath[1]}/_kubectl-agentkernel"

	# fish
	kubectl agentkernel completion fish > ~/.config/fish/completions/kubectl-agentkernel.fish

	# PowerShell
	kubectl agentkernel completion powershell | Out-String | Invoke-Expression`)

// CompletionOptions prints a shell completion script for the command tree.
type CompletionOptions struct {
	Shell          string
	NoDescriptions bool

	genericiooptions.IOStreams
}

// NewCompletionOptions returns CompletionOptions writing to streams.
func NewCompletionOptions(streams genericiooptions.IOStreams) *CompletionOptions {
	return &CompletionOptions{IOStreams: streams}
}

// NewCmdCompletion returns the completion command.
func NewCmdCompletion(streams genericiooptions.IOStreams) *cobra.Command {
	o := NewCompletionOptions(streams)
	cmd := &cobra.Command{
		Use:                   "completion bash|zsh|fish|powershell",
		DisableFlagsInUseLine: true,
		Short:                 "Print a shell completion script",
		Long:                  completionLong,
		Example:               completionExample,
		ValidArgs:             []string{"bash", "zsh", "fish", "powershell"},
		Args:                  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Complete(args)
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Root())
		},
	}
	cmd.Flags().BoolVar(&o.NoDescriptions, "no-descriptions", o.NoDescriptions, "Leave the descriptions of commands and flags out of the completion choices.")
	return cmd
}

// Complete takes the shell from the arguments.
func (o *CompletionOptions) Complete(args []string) {
	o.Shell = args[0]
}

// Validate checks the shell is one we can write a script for.
func (o *CompletionOptions) Validate() error {
	if _, ok := completionShells[o.Shell]; !ok {
		return fmt.Errorf("unsupported shell %q; choose one of: bash, zsh, fish, powershell", o.Shell)
	}
	return nil
}

// Run writes the completion script for root's whole tree.
func (o *CompletionOptions) Run(root *cobra.Command) error {
	return completionShells[o.Shell](root, o.Out, !o.NoDescriptions)
}
