package cmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
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

// completionTimeout bounds the API call behind a <TAB>: a shell waiting on an
// unreachable cluster would otherwise freeze the user's prompt.
const completionTimeout = 5 * time.Second

// completeSandboxNames completes sandbox names from the current namespace
// (--namespace, else the kubeconfig's). For exec and delete it offers bare
// names: exec takes one, delete any number not yet given. For cp, whose
// arguments are NAME:PATH or a local path, it offers "NAME:" (with no space
// after it, so the remote path can follow) and leaves local paths to the shell.
func completeSandboxNames(f cmdutil.Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if cmd.Name() == "cp" {
			return completeCopyArg(cmd.Context(), f, args, toComplete)
		}
		if cmd.Name() == "exec" && len(args) > 0 {
			// Only the first argument is a sandbox; the rest is the command to run in it.
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, err := listSandboxNames(cmd.Context(), f, toComplete)
		if err != nil {
			cobra.CompDebugln(err.Error(), true)
			return nil, cobra.ShellCompDirectiveError
		}
		return without(names, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeCopyArg completes one argument of cp, mirroring kubectl cp: a
// sandbox as "NAME:", or a local path when the word looks like one.
func completeCopyArg(ctx context.Context, f cmdutil.Factory, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	switch {
	case len(args) >= 2:
		return nil, cobra.ShellCompDirectiveNoFileComp
	case len(args) == 1 && strings.Contains(args[0], ":"):
		// Copying out of a sandbox: the destination is local.
		return nil, cobra.ShellCompDirectiveDefault
	case strings.Contains(toComplete, ":"):
		// A path inside the sandbox: we cannot list it without an exec.
		return nil, cobra.ShellCompDirectiveNoFileComp
	case strings.IndexAny(toComplete, "/.~") == 0:
		return nil, cobra.ShellCompDirectiveDefault
	}
	names, err := listSandboxNames(ctx, f, toComplete)
	if err != nil {
		cobra.CompDebugln(err.Error(), true)
		return nil, cobra.ShellCompDirectiveError
	}
	comps := make([]cobra.Completion, 0, len(names))
	for _, name := range names {
		comps = append(comps, name+":")
	}
	if len(comps) == 0 {
		// No sandbox matches: it is a local path, let the shell complete it.
		return nil, cobra.ShellCompDirectiveDefault
	}
	// NoSpace hides the shell's own file completion, so add the local
	// entries that match too; without a prefix that would be the whole
	// directory, so hint at paths instead.
	if toComplete == "" {
		comps = append(comps, "./", "/")
	} else if entries, err := os.ReadDir("."); err == nil {
		for _, e := range entries {
			if name := e.Name(); strings.HasPrefix(name, toComplete) {
				if e.IsDir() {
					name += "/"
				}
				comps = append(comps, name)
			}
		}
	}
	return comps, cobra.ShellCompDirectiveNoSpace
}

// listSandboxNames returns the names of the sandboxes in the namespace that
// start with prefix.
func listSandboxNames(ctx context.Context, f cmdutil.Factory, prefix string) ([]string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()

	namespace, _, err := f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, err
	}
	client, err := f.KubernetesClientSet()
	if err != nil {
		return nil, err
	}
	pods, err := sandbox.List(ctx, client, namespace, "")
	if err != nil {
		return nil, fmt.Errorf("listing sandboxes in namespace %q: %w", namespace, err)
	}
	var names []string
	for _, pod := range pods {
		if name := sandbox.NameOf(&pod); strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	return names, nil
}

// without returns names less those already on the command line.
func without(names, given []string) []string {
	return slices.DeleteFunc(names, func(name string) bool { return slices.Contains(given, name) })
}
