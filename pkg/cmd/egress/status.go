package egress

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

// EgressStatusOptions shows the namespace's egress proxy.
type EgressStatusOptions struct {
	PrintFlags *cli.PrintFlags

	cli.Clients
	genericiooptions.IOStreams
}

// NewCmdEgressStatus returns the egress status command.
func NewCmdEgressStatus(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &EgressStatusOptions{PrintFlags: cli.NewPrintFlags("", cli.WithoutName), IOStreams: streams}
	cmd := &cobra.Command{
		Use:                   "status [-n NAMESPACE] [-o json|yaml|jsonpath=...]",
		DisableFlagsInUseLine: true,
		Short:                 "Show the namespace's egress proxy and the sandboxes that use it",
		Args:                  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.PrintFlags.Validate(); err != nil {
				return err
			}
			if err := o.Complete(f); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Run reads and prints the status.
func (o *EgressStatusOptions) Run(ctx context.Context) error {
	st, err := egress.GetStatus(ctx, o.Clientset, o.Namespace)
	if err != nil {
		return o.Explain(err, o.Namespace)
	}
	if !o.PrintFlags.Own() {
		// An object of kind EgressStatus: the status's fields, with
		// apiVersion and kind added for kubectl's printers.
		printer, err := o.PrintFlags.Printer(false)
		if err != nil {
			return err
		}
		obj, err := cli.OwnObject("EgressStatus", "", st)
		if err != nil {
			return err
		}
		return printer.PrintObj(obj, o.Out)
	}
	var b strings.Builder
	if !st.Installed {
		fmt.Fprintf(&b, "no egress proxy in namespace %s; the first sandbox with --allow-host installs it, or: kubectl agentkernel egress install -n %s\n", o.Namespace, o.Namespace)
	} else {
		fmt.Fprintf(&b, "namespace:  %s\n", st.Namespace)
		fmt.Fprintf(&b, "image:      %s\n", st.Image)
		if mine := version.Get().Version; st.Version != "" && st.Version != mine {
			fmt.Fprintf(&b, "version:    %s (this plugin is %s: update with kubectl agentkernel egress install -n %s)\n", st.Version, mine, o.Namespace)
		} else {
			fmt.Fprintf(&b, "version:    %s\n", st.Version)
		}
		fmt.Fprintf(&b, "ready:      %d/%d\n", st.Ready, st.Replicas)
		if st.DeploymentNote != "" {
			fmt.Fprintf(&b, "note:       %s\n", st.DeploymentNote)
		}
		address := st.ClusterIP
		if address == "" {
			address = "none"
		}
		fmt.Fprintf(&b, "address:    %s\n", address)
		fmt.Fprintf(&b, "fenced:     %v\n", st.Fenced)
		fmt.Fprintf(&b, "private:    %s\n", joinedOrNone(st.PrivateCIDRs))
		if len(st.Missing) > 0 {
			fmt.Fprintf(&b, "missing:    %s (reinstall with: kubectl agentkernel egress install -n %s)\n", strings.Join(st.Missing, ", "), o.Namespace)
		}
	}
	fmt.Fprintf(&b, "sandboxes:  %s\n", joinedOrNone(st.Sandboxes))
	_, err = fmt.Fprint(o.Out, b.String())
	return err
}
