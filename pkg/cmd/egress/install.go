package egress

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/scheme"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
)

// EgressInstallOptions installs or updates the namespace's egress proxy.
type EgressInstallOptions struct {
	Image        string
	PrivateCIDRs []string
	APIServers   []string
	Replicas     int32
	DryRun       cmdutil.DryRunStrategy

	PrintFlags *genericclioptions.PrintFlags
	printer    printers.ResourcePrinter
	config     egress.Config

	cli.Clients
	genericiooptions.IOStreams
}

// NewEgressInstallOptions returns options for the proxy of this plugin's version.
func NewEgressInstallOptions(streams genericiooptions.IOStreams) *EgressInstallOptions {
	return &EgressInstallOptions{
		Image:      egress.DefaultImage(),
		Replicas:   1,
		PrintFlags: genericclioptions.NewPrintFlags("installed").WithTypeSetter(scheme.Scheme),
		IOStreams:  streams,
	}
}

// NewCmdEgressInstall returns the egress install command.
func NewCmdEgressInstall(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewEgressInstallOptions(streams)
	cmd := &cobra.Command{
		Use:                   "install [-n NAMESPACE] [flags]",
		DisableFlagsInUseLine: true,
		Short:                 "Install (or update) the namespace's egress proxy",
		Long: templates.LongDesc(`
			Install the namespace's egress proxy, or make an installed one match these
			options: its NetworkPolicy first (in: only the namespace's sandboxes; out:
			public addresses, DNS, the API server and the ranges given with --private-cidr),
			then its ServiceAccount, a Role to watch Pods, its Service and its Deployment.
			Objects of those names that the plugin did not make are never touched.

			The proxy's watch needs the API server: its in-cluster addresses are read from
			the "kubernetes" Service in "default". Where you may not read them, give them
			with --api-server; otherwise the proxy's policy allows private addresses on
			ports 443 and 6443.`),
		Example: templates.Examples(`
			# The proxy of this plugin's version, where sandboxes of namespace agents go out
			kubectl agentkernel egress install -n agents

			# Let granted names resolve into an internal range, two replicas
			kubectl agentkernel egress install -n agents --private-cidr 10.20.0.0/16 --replicas 2

			# Review what would be installed
			kubectl agentkernel egress install -n agents --dry-run=client -o yaml`),
		Args: cobra.NoArgs,
		RunE: cli.CompleteValidateRun(o, func(cmd *cobra.Command, _ []string) error { return o.Complete(f, cmd) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Image, "image", o.Image, "The proxy's image: the plugin's own binary, of the same version")
	fl.StringArrayVar(&o.PrivateCIDRs, "private-cidr", o.PrivateCIDRs, "Private range the proxy may reach when a granted name resolves into it, or a sandbox was granted an address in it (repeatable; loopback and link-local never)")
	fl.StringArrayVar(&o.APIServers, "api-server", o.APIServers, "In-cluster address of the API server, IP:PORT, for the proxy's NetworkPolicy (repeatable; default: read from the kubernetes Service in default)")
	fl.Int32Var(&o.Replicas, "replicas", o.Replicas, "How many proxy Pods to run")
	cmdutil.AddDryRunFlag(cmd)
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Complete reads the flags and builds clients.
func (o *EgressInstallOptions) Complete(f cmdutil.Factory, cmd *cobra.Command) error {
	var err error
	if o.DryRun, err = cmdutil.GetDryRunStrategy(cmd); err != nil {
		return err
	}
	if err := o.Clients.Complete(f); err != nil {
		return err
	}
	if o.printer, err = cli.ObjectPrinter(o.PrintFlags, o.DryRun); err != nil {
		return err
	}
	o.config = egress.Config{Namespace: o.Namespace, Image: o.Image, Replicas: o.Replicas}
	for _, s := range o.PrivateCIDRs {
		p, err := egress.ParsePrivateCIDR(s)
		if err != nil {
			return err
		}
		o.config.Private = append(o.config.Private, p)
	}
	for _, s := range o.APIServers {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || ap.Port() == 0 {
			return fmt.Errorf("--api-server %q: expected IP:PORT, e.g. 10.0.0.1:443 or [fd00::1]:6443 (kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes)", s)
		}
		o.config.APIServer = append(o.config.APIServer, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	return nil
}

// Validate checks the options without contacting the cluster.
func (o *EgressInstallOptions) Validate() error {
	if strings.TrimSpace(o.Image) == "" {
		return fmt.Errorf("--image must not be empty")
	}
	if o.Replicas < 1 {
		return fmt.Errorf("--replicas must be at least 1 (to remove the proxy: kubectl agentkernel egress uninstall)")
	}
	return nil
}

// Run installs or updates the proxy.
func (o *EgressInstallOptions) Run(ctx context.Context) error {
	var detectErr error
	if len(o.config.APIServer) == 0 && o.DryRun != cmdutil.DryRunClient {
		o.config.APIServer, detectErr = egress.DetectAPIServer(ctx, o.Clientset)
	}
	if o.DryRun == cmdutil.DryRunClient {
		return o.print(o.config.Objects().List(), "")
	}
	in, err := egress.Install(ctx, o.Clientset, &o.config, egress.InstallOptions{Update: true, ServerDryRun: o.DryRun == cmdutil.DryRunServer})
	if err != nil {
		return o.Explain(explainEgressAdmin(err, o.Namespace), o.Namespace)
	}
	// Said only once the proxy is there: a refused install has its own
	// one line.
	if detectErr != nil {
		fmt.Fprintf(o.ErrOut, "warning: cannot read the API server's in-cluster address (%v): the proxy's NetworkPolicy lets it reach private addresses on ports 443 and 6443 for its watch; narrow it with --api-server IP:PORT\n", detectErr)
	}
	suffix := ""
	if o.DryRun == cmdutil.DryRunServer {
		suffix = " (server dry run)"
	}
	var objs []runtime.Object
	if o.printer != nil {
		objs = o.config.Objects().List()
	}
	detail := fmt.Sprintf("created: %s; updated: %s", joinedOrNone(in.Created), joinedOrNone(in.Updated))
	return o.print(objs, fmt.Sprintf("egress proxy installed in namespace %s%s (%s)\n", o.Namespace, suffix, detail))
}

func joinedOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func (o *EgressInstallOptions) print(objs []runtime.Object, line string) error {
	switch *o.PrintFlags.OutputFormat {
	case "":
		if line == "" {
			line = fmt.Sprintf("egress proxy installed in namespace %s (dry run)\n", o.Namespace)
		}
		_, err := fmt.Fprint(o.Out, line)
		return err
	case "name":
		_, err := fmt.Fprintf(o.Out, "deployment.apps/%s\n", o.config.Objects().Deployment.Name)
		return err
	}
	list := &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
	for _, obj := range objs {
		list.Items = append(list.Items, runtime.RawExtension{Object: obj})
	}
	return o.printer.PrintObj(list, o.Out)
}
