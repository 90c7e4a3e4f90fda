package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var deleteExample = templates.Examples(`
	# Delete one sandbox and wait until it is gone
	kubectl agentkernel delete demo

	# Delete every sandbox in the namespace, without waiting
	kubectl agentkernel delete --all --wait=false

	# Delete sandboxes by label, in all namespaces
	kubectl agentkernel delete -l team=ml -A`)

// DeleteOptions deletes sandboxes, and never anything the plugin did not create.
type DeleteOptions struct {
	Names          []string
	All            bool
	Selector       string
	AllNamespaces  bool
	IgnoreNotFound bool
	GracePeriod    int64

	cli.WaitFlags
	cli.Clients
	genericiooptions.IOStreams
}

// NewDeleteOptions returns DeleteOptions writing to streams.
func NewDeleteOptions(streams genericiooptions.IOStreams) *DeleteOptions {
	return &DeleteOptions{WaitFlags: cli.NewWaitFlags(2 * time.Minute), GracePeriod: -1, IOStreams: streams}
}

// NewCmdDelete returns the delete command.
func NewCmdDelete(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewDeleteOptions(streams)
	cmd := &cobra.Command{
		Use:                   "delete (NAME... | --all | -l SELECTOR) [--wait] [--ignore-not-found]",
		DisableFlagsInUseLine: true,
		Short:                 "Delete sandboxes",
		Long: templates.LongDesc(`
			Delete sandboxes. Only Pods labelled agentkernel/managed-by=agentkernel are ever
			deleted. A sandbox's Secret and NetworkPolicy are owned by its Pod, so the
			cluster's garbage collector removes them with it. A persistent sandbox's
			workspace is deleted too, suspended or not, and its files with it.`),
		Example:           deleteExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE:              cli.CompleteValidateRun(o, func(_ *cobra.Command, args []string) error { return o.Complete(f, args) }),
	}
	cmd.Flags().BoolVar(&o.All, "all", o.All, "Delete every sandbox in the namespace")
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", o.Selector, "Delete the sandboxes matching this label selector")
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", o.AllNamespaces, "With --all or -l: in every namespace")
	o.AddWaitFlags(cmd.Flags(), "the sandboxes are gone")
	cmd.Flags().BoolVar(&o.IgnoreNotFound, "ignore-not-found", o.IgnoreNotFound, "Treat a sandbox that does not exist as deleted")
	cmd.Flags().Int64Var(&o.GracePeriod, "grace-period", o.GracePeriod, "Seconds to let the sandbox stop; -1 uses the sandbox's own (10), 0 kills at once")
	return cmd
}

// Complete takes the names and builds clients.
func (o *DeleteOptions) Complete(f cmdutil.Factory, args []string) error {
	o.Names = args
	return o.Clients.Complete(f)
}

// Validate checks the choice of what to delete.
func (o *DeleteOptions) Validate() error {
	byQuery := o.All || o.Selector != ""
	switch {
	case len(o.Names) == 0 && !byQuery:
		return fmt.Errorf("name the sandboxes to delete, or use --all or -l SELECTOR (list them with: kubectl agentkernel list)")
	case len(o.Names) > 0 && byQuery:
		return fmt.Errorf("give sandbox names or --all/-l, not both")
	case o.AllNamespaces && !byQuery:
		return fmt.Errorf("-A needs --all or -l: names are looked up in one namespace")
	case o.GracePeriod < -1:
		return fmt.Errorf("--grace-period must be -1 or more")
	}
	for _, n := range o.Names {
		if err := sandbox.ValidateName(n); err != nil {
			return err
		}
	}
	if _, err := sandbox.Selector(o.Selector); err != nil {
		return err
	}
	return nil
}

// Run deletes, then waits for every deleted Pod to be gone. Sandboxes found
// by --all or -l are deleted by the name and UID that were listed. Many are
// deleted at once (the domain's DeleteNamed and DeleteListed), and reported
// in order; one that fails is reported with its reason and the rest go on.
func (o *DeleteOptions) Run(ctx context.Context) error {
	var grace *int64
	if o.GracePeriod >= 0 {
		grace = &o.GracePeriod
	}
	var errs []error
	var deleted []*corev1.Pod
	done := func(d sandbox.Deletion) {
		var notFound *sandbox.NotFoundError
		switch {
		case errors.As(d.Err, &notFound) && o.IgnoreNotFound:
		case d.Err != nil:
			errs = append(errs, o.Explain(d.Err, d.Namespace))
		default:
			if d.Pod != nil {
				deleted = append(deleted, d.Pod)
			}
			fmt.Fprintf(o.Out, "sandbox/%s deleted\n", d.Name)
		}
	}
	if len(o.Names) > 0 {
		sandbox.DeleteNamed(ctx, o.Clientset, o.Namespace, o.Names, grace, done)
	} else {
		ns := o.ListNamespace(o.AllNamespaces)
		pods, err := sandbox.List(ctx, o.Clientset, ns, o.Selector)
		if err != nil {
			return o.Explain(err, ns)
		}
		suspended, err := sandbox.ListSuspended(ctx, o.Clientset, ns, o.Selector, pods)
		if err != nil {
			return o.Explain(err, ns)
		}
		if len(pods) == 0 && len(suspended) == 0 {
			_, err := fmt.Fprintln(o.ErrOut, "No sandboxes found.")
			return err
		}
		sandbox.DeleteListed(ctx, o.Clientset, pods, suspended, grace, done)
	}
	if o.Wait && ctx.Err() == nil {
		for _, err := range sandbox.WaitForAllDeleted(ctx, o.Clientset, deleted, o.Timeout) {
			errs = append(errs, o.Explain(err, o.Namespace))
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return errors.Join(errs...)
}
