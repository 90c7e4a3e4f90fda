package cmd

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var listExample = templates.Examples(`
	# Sandboxes in the current namespace
	kubectl agentkernel list

	# Everywhere, with node, IP and runtime class
	kubectl agentkernel list -A -o wide

	# Names only, for scripts
	kubectl agentkernel list -o name

	# Oldest first, with the labels
	kubectl agentkernel list --sort-by=.metadata.creationTimestamp --show-labels

	# Pod, node and IP of each, as kubectl get would print them
	kubectl agentkernel list -o custom-columns=POD:.metadata.name,NODE:.spec.nodeName,IP:.status.podIP`)

// ListOptions lists sandboxes, always from the cluster (there is no local state).
type ListOptions struct {
	AllNamespaces bool
	Selector      string
	PrintFlags    *cli.PrintFlags

	cli.Clients
	genericiooptions.IOStreams
}

// NewListOptions returns ListOptions writing to streams.
func NewListOptions(streams genericiooptions.IOStreams) *ListOptions {
	return &ListOptions{PrintFlags: cli.NewPrintFlags("", cli.WithTable|cli.WithSort), IOStreams: streams}
}

// NewCmdList returns the list command.
func NewCmdList(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewListOptions(streams)
	cmd := &cobra.Command{
		Use:                   "list [-A] [-l SELECTOR] [-o wide|json|yaml|name|jsonpath=...|custom-columns=...] [--sort-by=...]",
		DisableFlagsInUseLine: true,
		Aliases:               []string{"ls"},
		Short:                 "List sandboxes",
		Example:               listExample,
		Args:                  cobra.NoArgs,
		RunE:                  cli.CompleteValidateRun(o, func(_ *cobra.Command, _ []string) error { return o.Complete(f) }),
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", o.AllNamespaces, "List sandboxes in every namespace")
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", o.Selector, "Only sandboxes matching this label selector")
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Complete builds clients.
func (o *ListOptions) Complete(f cmdutil.Factory) error {
	return o.Clients.Complete(f)
}

// Validate checks the output format and selector.
func (o *ListOptions) Validate() error {
	if err := o.PrintFlags.Validate(); err != nil {
		return err
	}
	_, err := sandbox.Selector(o.Selector)
	return err
}

// Run lists and prints.
func (o *ListOptions) Run(ctx context.Context) error {
	ns := o.ListNamespace(o.AllNamespaces)
	pods, err := sandbox.List(ctx, o.Clientset, ns, o.Selector)
	if err != nil {
		return o.Explain(err, ns)
	}
	suspended, err := sandbox.ListSuspended(ctx, o.Clientset, ns, o.Selector, pods)
	if err != nil {
		return o.Explain(err, ns)
	}
	pods = withoutEnded(pods, suspended)
	// By sandbox name: a claimed sandbox's Pod keeps its pool's generated name.
	sort.SliceStable(pods, func(i, j int) bool {
		return pods[i].Namespace < pods[j].Namespace || pods[i].Namespace == pods[j].Namespace && sandbox.NameOf(&pods[i]) < sandbox.NameOf(&pods[j])
	})
	printer, err := o.PrintFlags.Printer(o.AllNamespaces)
	if err != nil {
		return err
	}
	for i := range pods {
		pods[i].TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	}
	if o.PrintFlags.Output() == "name" {
		// A sandbox is named by its label, not its Pod's name (a claimed
		// sandbox's Pod keeps its pool's generated name): sandbox/NAME is
		// what the other commands take.
		for _, p := range pods {
			if _, err := fmt.Fprintf(o.Out, "sandbox/%s\n", sandbox.NameOf(&p)); err != nil {
				return err
			}
		}
		for _, s := range suspended {
			if _, err := fmt.Fprintf(o.Out, "sandbox/%s\n", s.Name()); err != nil {
				return err
			}
		}
		return nil
	}
	if !o.PrintFlags.Own() {
		return printer.PrintObj(listOf(pods, suspended), o.Out)
	}
	if len(pods) == 0 && len(suspended) == 0 {
		return cli.NoneFound(o.ErrOut, "sandboxes", o.AllNamespaces, ns)
	}
	table := SandboxTable(pods, time.Now())
	addSuspendedRows(table, suspended, time.Now())
	if o.PrintFlags.Output() == "wide" {
		addModelUseColumn(table, readListUsage(ctx, o, pods))
	}
	return printer.PrintObj(table, o.Out)
}

// SandboxTable builds the table list prints; wide-only columns have priority 1.
func SandboxTable(pods []corev1.Pod, now time.Time) *metav1.Table {
	t := &metav1.Table{
		ColumnDefinitions: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string"},
			{Name: "Status", Type: "string"},
			{Name: "Image", Type: "string"},
			{Name: "Profile", Type: "string"},
			{Name: "Network", Type: "string"},
			{Name: "Age", Type: "string"},
			{Name: "Expires", Type: "string"},
			{Name: "Node", Type: "string", Priority: 1},
			{Name: "IP", Type: "string", Priority: 1},
			{Name: "Runtime", Type: "string", Priority: 1},
			{Name: "Agent", Type: "string", Priority: 1},
			{Name: "TTL", Type: "string", Priority: 1},
			{Name: "Created-By", Type: "string", Priority: 1},
			{Name: "Version", Type: "string", Priority: 1},
		},
	}
	for i := range pods {
		p := &pods[i]
		image := ""
		if len(p.Spec.Containers) > 0 {
			image = p.Spec.Containers[0].Image
		}
		runtimeClass := "<default>"
		if p.Spec.RuntimeClassName != nil {
			runtimeClass = *p.Spec.RuntimeClassName
		}
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells: []interface{}{
				sandbox.NameOf(p),
				sandbox.Status(p),
				image,
				cli.OrNone(p.Annotations[sandbox.AnnotationProfile]),
				cli.OrNone(p.Annotations[sandbox.AnnotationNetwork]),
				duration.HumanDuration(now.Sub(p.CreationTimestamp.Time)),
				expires(p, now),
				cli.OrNone(p.Spec.NodeName),
				cli.OrNone(p.Status.PodIP),
				runtimeClass,
				cli.OrNone(p.Annotations[sandbox.AnnotationAgent]),
				cli.OrNone(p.Annotations[sandbox.AnnotationTTL]),
				cli.OrNone(p.Annotations[sandbox.AnnotationCreatedBy]),
				cli.OrNone(p.Annotations[sandbox.AnnotationVersion]),
			},
			Object: runtime.RawExtension{Object: p},
		})
	}
	return t
}

// expires is how long until the sandbox's TTL ends it ("<none>" without one).
func expires(p *corev1.Pod, now time.Time) string {
	at, ok := sandbox.ExpiresAt(p, now)
	switch {
	case !ok:
		return "<none>"
	case sandbox.Expired(p) || !at.After(now):
		return "expired"
	}
	return "in " + duration.HumanDuration(at.Sub(now))
}
