package egress

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
)

// EgressUninstallOptions removes the namespace's egress proxy.
type EgressUninstallOptions struct {
	Force   bool
	Timeout time.Duration

	cli.Clients
	genericiooptions.IOStreams
}

// NewCmdEgressUninstall returns the egress uninstall command.
func NewCmdEgressUninstall(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &EgressUninstallOptions{Timeout: 2 * time.Minute, IOStreams: streams}
	cmd := &cobra.Command{
		Use:                   "uninstall [-n NAMESPACE] [--force]",
		DisableFlagsInUseLine: true,
		Short:                 "Remove the namespace's egress proxy",
		Long: templates.LongDesc(`
			Remove the namespace's egress proxy: its Deployment first, its NetworkPolicy only
			once its Pods are gone. Objects of those names that the plugin did not make are
			never touched. While sandboxes made with --allow-host exist it refuses, since they
			would be left with no network; --force removes it anyway.`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f); err != nil {
				return err
			}
			if o.Timeout <= 0 {
				return fmt.Errorf("--timeout must be positive")
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&o.Force, "force", o.Force, "Remove it even while sandboxes use it (they keep no network)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for the proxy's Pods to go before its NetworkPolicy is removed")
	return cmd
}

// Run removes the proxy.
func (o *EgressUninstallOptions) Run(ctx context.Context) error {
	removed, err := egress.Uninstall(ctx, o.Clientset, o.Namespace, o.Force, o.Timeout)
	for _, r := range removed {
		fmt.Fprintf(o.Out, "%s deleted\n", r)
	}
	if err != nil {
		return o.Explain(explainEgressAdmin(err, o.Namespace), o.Namespace)
	}
	if len(removed) == 0 {
		fmt.Fprintf(o.Out, "no egress proxy in namespace %s\n", o.Namespace)
	}
	return nil
}
