package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

// EgressStatusOptions shows the namespace's egress proxy.
type EgressStatusOptions struct {
	Output string

	clients
	genericiooptions.IOStreams
}

// NewCmdEgressStatus returns the egress status command.
func NewCmdEgressStatus(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &EgressStatusOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:                   "status [-n NAMESPACE] [-o json|yaml]",
		DisableFlagsInUseLine: true,
		Short:                 "Show the namespace's egress proxy and the sandboxes that use it",
		Args:                  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch o.Output {
			case "", "json", "yaml":
			default:
				return fmt.Errorf("--output must be 'json' or 'yaml', not %q", o.Output)
			}
			if err := o.complete(f); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "One of 'json' or 'yaml'. Default: a few lines for people.")
	return cmd
}

// Run reads and prints the status.
func (o *EgressStatusOptions) Run(ctx context.Context) error {
	st, err := egress.GetStatus(ctx, o.Clientset, o.Namespace)
	if err != nil {
		return o.explain(err, o.Namespace)
	}
	switch o.Output {
	case "json":
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(o.Out, string(b))
		return err
	case "yaml":
		b, err := yaml.Marshal(st)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(b)
		return err
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
