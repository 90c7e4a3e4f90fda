package cmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
)

var gcExample = templates.Examples(`
	# What would go, everywhere
	kubectl agentkernel gc -A --dry-run

	# Delete ended sandboxes and orphaned objects in the current namespace
	kubectl agentkernel gc`)

// GCOptions deletes what has ended.
type GCOptions struct {
	AllNamespaces bool
	DryRun        bool

	cli.Clients
	genericiooptions.IOStreams
}

// NewGCOptions returns GCOptions writing to streams.
func NewGCOptions(streams genericiooptions.IOStreams) *GCOptions {
	return &GCOptions{IOStreams: streams}
}

// NewCmdGC returns the gc command.
func NewCmdGC(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewGCOptions(streams)
	cmd := &cobra.Command{
		Use:                   "gc [-A] [--dry-run]",
		DisableFlagsInUseLine: true,
		Short:                 "Delete sandboxes that ended (TTL, idle timeout, exit) and orphaned objects",
		Long: templates.LongDesc(`
			Delete what has ended: sandboxes whose --ttl ran out (DeadlineExceeded), that
			stopped themselves after --idle-timeout, or whose main process exited; running
			disposable sandboxes past the end serve set (their E2B timeout); warm pool
			members that ended or whose pool is gone; and Secrets and NetworkPolicies of
			ours whose sandbox's Pod is gone. A sandbox that ended frees its node at once,
			but stays listed until it is deleted.

			Only objects the plugin made are ever deleted (the same checks as every other
			command), each by UID.`),
		Example: gcExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f, cmd); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", o.AllNamespaces, "In every namespace")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", o.DryRun, "Only say what would be deleted")
	return cmd
}

// Complete builds clients.
func (o *GCOptions) Complete(f cmdutil.Factory, cmd *cobra.Command) error {
	return o.Clients.Complete(f)
}

// Run finds the garbage and deletes it.
func (o *GCOptions) Run(ctx context.Context) error {
	ns := o.ListNamespace(o.AllNamespaces)
	garbage, err := pool.FindGarbage(ctx, o.Clientset, ns)
	if err != nil {
		return o.Explain(err, ns)
	}
	if len(garbage) == 0 {
		_, err := fmt.Fprintln(o.ErrOut, "Nothing to collect.")
		return err
	}
	var errs []error
	for _, g := range garbage {
		where := ""
		if o.AllNamespaces {
			where = " in " + g.Namespace
		}
		if o.DryRun {
			fmt.Fprintf(o.Out, "%s/%s%s would be deleted (%s)\n", g.Kind, g.Name, where, g.Why)
			continue
		}
		if err := g.Delete(ctx, o.Clientset); err != nil {
			errs = append(errs, fmt.Errorf("%s/%s%s: %w", g.Kind, g.Name, where, o.Explain(err, g.Namespace)))
			continue
		}
		fmt.Fprintf(o.Out, "%s/%s%s deleted (%s)\n", g.Kind, g.Name, where, g.Why)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return errors.Join(errs...)
}
