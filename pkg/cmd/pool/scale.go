package pool

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
)

var poolScaleExample = templates.Examples(`
	# Keep twenty warm instead
	kubectl agentkernel pool scale agents --size 20

	# None overnight (claims are created cold meanwhile); the definition stays
	kubectl agentkernel pool scale agents --size 0`)

// PoolScaleOptions resizes a pool.
type PoolScaleOptions struct {
	Name string
	Size int

	cli.WaitFlags
	cli.Clients
	genericiooptions.IOStreams
}

// NewPoolScaleOptions returns PoolScaleOptions writing to streams.
func NewPoolScaleOptions(streams genericiooptions.IOStreams) *PoolScaleOptions {
	return &PoolScaleOptions{Size: -1, WaitFlags: cli.NewWaitFlags(5 * time.Minute), IOStreams: streams}
}

// NewCmdPoolScale returns the pool scale command.
func NewCmdPoolScale(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewPoolScaleOptions(streams)
	cmd := &cobra.Command{
		Use:                   "scale NAME --size N",
		DisableFlagsInUseLine: true,
		Short:                 "Change how many sandboxes a pool keeps warm",
		Long: templates.LongDesc(`
			Set a pool's size and bring it there: missing members are created, extra ones
			deleted (those not ready yet first). Sandboxes already claimed are not members
			and are never touched.`),
		Example:           poolScaleExample,
		ValidArgsFunction: cli.CompletePoolNames(f),
		RunE:              cli.CompleteValidateRun(o, func(cmd *cobra.Command, args []string) error { return o.Complete(f, cmd, args) }),
	}
	cmd.Flags().IntVar(&o.Size, "size", o.Size, "Number of warm sandboxes to keep")
	o.AddWaitFlags(cmd.Flags(), "the pool has that many ready")
	_ = cmd.MarkFlagRequired("size")
	return cli.SpeakFlags(cmd)
}

// Complete takes the name and builds clients.
func (o *PoolScaleOptions) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("pool scale takes exactly one pool name (got %d): kubectl agentkernel pool scale NAME --size N", len(args))
	}
	o.Name = args[0]
	return o.Clients.Complete(f)
}

// Validate checks the name and size.
func (o *PoolScaleOptions) Validate() error {
	if err := pool.ValidatePoolName(o.Name); err != nil {
		return err
	}
	if err := o.WaitFlags.Validate(); err != nil {
		return err
	}
	return pool.ValidatePoolSize(o.Size, false)
}

// Run scales the pool.
func (o *PoolScaleOptions) Run(ctx context.Context) error {
	st, err := pool.ScalePool(ctx, o.Clientset, o.Namespace, o.Name, o.Size, pool.PoolOptions{
		Wait: o.Wait, Timeout: o.Timeout, Progress: poolProgress(o.ErrOut, o.Name),
	})
	if err != nil {
		return o.Explain(err, o.Namespace)
	}
	_, err = fmt.Fprintf(o.Out, "pool/%s scaled to %d (%d ready, %d starting)\n", o.Name, o.Size, st.Ready, st.Starting)
	return err
}
