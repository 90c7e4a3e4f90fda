package pool

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
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var poolDeleteExample = templates.Examples(`
	# Delete a pool and its warm sandboxes; those already claimed stay
	kubectl agentkernel pool delete agents`)

// PoolDeleteOptions deletes pools.
type PoolDeleteOptions struct {
	Names          []string
	IgnoreNotFound bool

	cli.WaitFlags
	cli.Clients
	genericiooptions.IOStreams
}

// NewPoolDeleteOptions returns PoolDeleteOptions writing to streams.
func NewPoolDeleteOptions(streams genericiooptions.IOStreams) *PoolDeleteOptions {
	return &PoolDeleteOptions{WaitFlags: cli.NewWaitFlags(2 * time.Minute), IOStreams: streams}
}

// NewCmdPoolDelete returns the pool delete command.
func NewCmdPoolDelete(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewPoolDeleteOptions(streams)
	cmd := &cobra.Command{
		Use:                   "delete NAME... [--wait] [--ignore-not-found]",
		DisableFlagsInUseLine: true,
		Short:                 "Delete pools and their warm sandboxes",
		Long: templates.LongDesc(`
			Delete pools: the definition and every warm sandbox nobody claimed. Sandboxes
			already claimed from a pool are not its members any more and are never touched;
			delete them like any other. A claim racing the delete either gets its sandbox
			(and keeps it) or finds none and creates one cold: nothing is claimed twice,
			and the cluster's garbage collector removes any member made after the pool is
			gone.`),
		Example:           poolDeleteExample,
		ValidArgsFunction: cli.CompletePoolNames(f),
		RunE:              cli.CompleteValidateRun(o, func(_ *cobra.Command, args []string) error { return o.Complete(f, args) }),
	}
	o.AddWaitFlags(cmd.Flags(), "the warm sandboxes are gone")
	cmd.Flags().BoolVar(&o.IgnoreNotFound, "ignore-not-found", o.IgnoreNotFound, "Treat a pool that does not exist as deleted")
	return cmd
}

// Complete takes the names and builds clients.
func (o *PoolDeleteOptions) Complete(f cmdutil.Factory, args []string) error {
	o.Names = args
	return o.Clients.Complete(f)
}

// Validate checks the names.
func (o *PoolDeleteOptions) Validate() error {
	if len(o.Names) == 0 {
		return fmt.Errorf("name the pools to delete (list them with: kubectl agentkernel pool list)")
	}
	for _, n := range o.Names {
		if err := pool.ValidatePoolName(n); err != nil {
			return err
		}
	}
	return o.WaitFlags.Validate()
}

// Run deletes each pool, then waits for its warm members to be gone.
func (o *PoolDeleteOptions) Run(ctx context.Context) error {
	var errs []error
	for _, name := range o.Names {
		removed, kept, err := pool.DeletePool(ctx, o.Clientset, o.Namespace, name)
		var notFound *pool.PoolNotFoundError
		switch {
		case errors.As(err, &notFound) && o.IgnoreNotFound:
			continue
		case err != nil:
			errs = append(errs, o.Explain(err, o.Namespace))
			continue
		}
		fmt.Fprintf(o.Out, "pool/%s deleted (%d warm sandboxes removed, %d claimed kept)\n", name, len(removed), kept)
		if o.Wait {
			for _, pod := range removed {
				if err := sandbox.WaitForDeleted(ctx, o.Clientset, pod, o.Timeout); err != nil {
					errs = append(errs, o.Explain(err, o.Namespace))
					break
				}
			}
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return errors.Join(errs...)
}
