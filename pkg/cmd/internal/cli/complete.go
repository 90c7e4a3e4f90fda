package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// completionTimeout bounds the API call behind a <TAB>: a shell waiting on an
// unreachable cluster would otherwise freeze the user's prompt.
const completionTimeout = 5 * time.Second

// CompleteSandboxNames completes sandbox names from the current namespace
// (--namespace, else the kubeconfig's). For exec and delete it offers bare
// names: exec takes one, delete any number not yet given. For cp, whose
// arguments are NAME:PATH or a local path, it offers "NAME:" (with no space
// after it, so the remote path can follow) and leaves local paths to the shell.
func CompleteSandboxNames(f cmdutil.Factory) cobra.CompletionFunc {
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
		return Without(names, args), cobra.ShellCompDirectiveNoFileComp
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
	return namesForCompletion(ctx, f, prefix, func(ctx context.Context, client kubernetes.Interface, namespace string) ([]string, error) {
		pods, err := sandbox.List(ctx, client, namespace, "")
		if err != nil {
			return nil, fmt.Errorf("listing sandboxes in namespace %q: %w", namespace, err)
		}
		names := make([]string, 0, len(pods))
		for i := range pods {
			names = append(names, sandbox.NameOf(&pods[i]))
		}
		return names, nil
	})
}

// namesForCompletion is the API call behind a <TAB>: list's names in the
// current namespace (--namespace, else the kubeconfig's) that start with
// prefix, within completionTimeout.
func namesForCompletion(ctx context.Context, f cmdutil.Factory, prefix string, list func(ctx context.Context, client kubernetes.Interface, namespace string) ([]string, error)) ([]string, error) {
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
	names, err := list(ctx, client, namespace)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(names, func(name string) bool { return !strings.HasPrefix(name, prefix) }), nil
}

// Without returns names less those already on the command line.
func Without(names, given []string) []string {
	return slices.DeleteFunc(names, func(name string) bool { return slices.Contains(given, name) })
}
