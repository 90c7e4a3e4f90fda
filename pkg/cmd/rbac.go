package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
)

var rbacLong = templates.LongDesc(`
	Print the smallest RBAC that lets a user run every command of the plugin in one
	namespace: a Role with only the resources and verbs the plugin uses (each one
	explained in a comment), a Role in kube-system that lets create read the
	cluster's DNS Services (nothing else there), and, with --all-namespaces, a
	ClusterRole for list -A, pool list -A and doctor's RuntimeClass check. Given a
	subject, each comes with its binding. --egress-admin adds the Role that egress
	install and uninstall take: an admin's, not a user's.

	It contacts no cluster: review the output, then apply it as an admin.
	deploy/rbac.yaml in the repository is this command's output, checked in CI.`)

var rbacExample = templates.Examples(`
	# Let alice run sandboxes in namespace agents
	kubectl agentkernel rbac -n agents --user alice | kubectl apply -f -

	# A group, or a CI service account
	kubectl agentkernel rbac -n agents --group agent-users
	kubectl agentkernel rbac -n agents --serviceaccount ci:runner

	# Also let them list sandboxes in every namespace
	kubectl agentkernel rbac -n agents --user alice --all-namespaces

	# What an admin needs to install the namespace's egress proxy (egress install)
	kubectl agentkernel rbac -n agents --user admin --egress-admin

	# The objects' kinds and names only
	kubectl agentkernel rbac -n agents --user alice -o name`)

// RBACOptions prints the plugin's RBAC.
type RBACOptions struct {
	User           string
	Group          string
	ServiceAccount string
	AllNamespaces  bool
	DNSReader      bool
	EgressAdmin    bool
	PrintFlags     *cli.PrintFlags

	opts rbac.Options
	genericiooptions.IOStreams
}

// NewRBACOptions returns RBACOptions writing to streams.
func NewRBACOptions(streams genericiooptions.IOStreams) *RBACOptions {
	return &RBACOptions{DNSReader: true, PrintFlags: cli.NewPrintFlags("yaml", cli.WithoutDefault), IOStreams: streams}
}

// NewCmdRBAC returns the rbac command.
func NewCmdRBAC(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewRBACOptions(streams)
	cmd := &cobra.Command{
		Use:                   "rbac [-n NAMESPACE] [--user USER | --group GROUP | --serviceaccount NAMESPACE:NAME] [--all-namespaces]",
		DisableFlagsInUseLine: true,
		Short:                 "Print the least-privilege Role (and binding) the plugin needs",
		Long:                  rbacLong,
		Example:               rbacExample,
		Args:                  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	fl := cmd.Flags()
	// As in kubectl create rolebinding, --user here is the subject to bind,
	// not the kubeconfig user: this command talks to no cluster.
	fl.StringVar(&o.User, "user", o.User, "User to bind the roles to")
	fl.StringVar(&o.Group, "group", o.Group, "Group to bind the roles to")
	fl.StringVar(&o.ServiceAccount, "serviceaccount", o.ServiceAccount, "Service account to bind the roles to, as NAMESPACE:NAME")
	fl.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", o.AllNamespaces, "Add a ClusterRole to list sandboxes in every namespace (and RuntimeClasses)")
	fl.BoolVar(&o.DNSReader, "dns-reader", o.DNSReader, "Add the Role in kube-system that lets create find the cluster's DNS (kube-dns, NodeLocal DNSCache)")
	fl.BoolVar(&o.EgressAdmin, "egress-admin", o.EgressAdmin, "Add the Role an admin needs in the namespace for egress install and uninstall (not for users)")
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Complete reads the namespace (from -n or the kubeconfig) and the subject.
func (o *RBACOptions) Complete(f cmdutil.Factory) error {
	ns, _, err := f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return fmt.Errorf("reading kubeconfig: %w (give the namespace with -n)", err)
	}
	subject, err := rbac.Subject(o.User, o.Group, o.ServiceAccount)
	if err != nil {
		return err
	}
	o.opts = rbac.Options{Namespace: ns, Subject: subject, Cluster: o.AllNamespaces, DNS: o.DNSReader, EgressAdmin: o.EgressAdmin}
	return nil
}

// Validate checks the output format.
func (o *RBACOptions) Validate() error { return o.PrintFlags.Validate() }

// Run prints the objects: YAML documents after a comment that explains each
// permission (what kubectl apply -f takes, and deploy/rbac.yaml is), or
// through kubectl's printers one List (-o name: one line per object).
func (o *RBACOptions) Run() error {
	objs := rbac.Objects(o.opts)
	if o.PrintFlags.Output() != "yaml" {
		printer, err := o.PrintFlags.Printer(false)
		if err != nil {
			return err
		}
		if o.PrintFlags.Output() != "name" {
			return printer.PrintObj(asList(objs), o.Out)
		}
		for _, obj := range objs {
			if err := printer.PrintObj(obj, o.Out); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := fmt.Fprint(o.Out, rbac.Comment(o.opts)); err != nil {
		return err
	}
	p := &printers.YAMLPrinter{}
	for _, obj := range objs {
		if err := p.PrintObj(obj, o.Out); err != nil {
			return err
		}
	}
	return nil
}

func asList(objs []runtime.Object) *corev1.List {
	list := &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
	for _, obj := range objs {
		list.Items = append(list.Items, runtime.RawExtension{Object: obj})
	}
	return list
}
