package pool

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
)

var poolListExample = templates.Examples(`
	# Pools in the current namespace: ready, starting and claimed sandboxes
	kubectl agentkernel pool list

	# Everywhere, with resources, TTL and idle timeout
	kubectl agentkernel pool list -A -o wide

	# The number of ready sandboxes of each pool, for scripts
	kubectl agentkernel pool list -o jsonpath='{range .items[*]}{.metadata.name} {.status.ready}{"\n"}{end}'`)

// PoolListOptions lists pools.
type PoolListOptions struct {
	AllNamespaces bool
	NoReconcile   bool
	PrintFlags    *cli.PrintFlags

	cli.Clients
	genericiooptions.IOStreams
}

// NewPoolListOptions returns PoolListOptions writing to streams.
func NewPoolListOptions(streams genericiooptions.IOStreams) *PoolListOptions {
	return &PoolListOptions{PrintFlags: cli.NewPrintFlags("", cli.WithTable|cli.WithSort), IOStreams: streams}
}

// NewCmdPoolList returns the pool list command.
func NewCmdPoolList(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewPoolListOptions(streams)
	cmd := &cobra.Command{
		Use:                   "list [-A] [-o wide|json|yaml|name|jsonpath=...]",
		DisableFlagsInUseLine: true,
		Aliases:               []string{"ls"},
		Short:                 "List pools, with ready, starting and claimed sandboxes",
		Long: templates.LongDesc(`
			List pools from the cluster: for each, its size, the members ready to be claimed,
			those starting — with the cluster's reason when they are stuck (ErrImagePull,
			Unschedulable...) — and the live sandboxes claimed from it.

			With no controller to do it, list also tops each pool up to its size (members
			that ended are replaced, a claimant that died before making its replacement is
			made up for); --no-reconcile only looks.`),
		Example: poolListExample,
		Args:    cobra.NoArgs,
		RunE:    cli.CompleteValidateRun(o, func(_ *cobra.Command, _ []string) error { return o.Complete(f) }),
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", o.AllNamespaces, "List pools in every namespace")
	cmd.Flags().BoolVar(&o.NoReconcile, "no-reconcile", o.NoReconcile, "Only look: do not top pools up to their size")
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Complete builds clients.
func (o *PoolListOptions) Complete(f cmdutil.Factory) error {
	return o.Clients.Complete(f)
}

// Validate checks the output format.
func (o *PoolListOptions) Validate() error { return o.PrintFlags.Validate() }

// Run lists (and reconciles) the pools and prints them.
func (o *PoolListOptions) Run(ctx context.Context) error {
	ns := o.ListNamespace(o.AllNamespaces)
	pools, bad, err := pool.ListPools(ctx, o.Clientset, ns)
	if err != nil {
		return o.Explain(err, ns)
	}
	for _, err := range bad {
		fmt.Fprintf(o.ErrOut, "warning: %v\n", err)
	}
	var statuses []*pool.PoolStatus
	if o.NoReconcile {
		if statuses, err = pool.PoolStatuses(ctx, o.Clientset, pools); err != nil {
			return o.Explain(err, ns)
		}
	} else {
		for _, p := range pools {
			st, err := pool.Reconcile(ctx, o.Clientset, p)
			if err != nil {
				if st == nil {
					return o.Explain(err, p.Namespace)
				}
				fmt.Fprintf(o.ErrOut, "warning: topping up pool %s: %v\n", p.Name, o.Explain(err, p.Namespace))
			}
			statuses = append(statuses, st)
		}
	}
	printer, err := o.PrintFlags.Printer(o.AllNamespaces)
	if err != nil {
		return err
	}
	if !o.PrintFlags.Own() {
		list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List"}}
		for _, st := range statuses {
			list.Items = append(list.Items, *poolObject(st))
		}
		if o.PrintFlags.Output() == "name" {
			for i := range list.Items {
				if err := printer.PrintObj(&list.Items[i], o.Out); err != nil {
					return err
				}
			}
			return nil
		}
		return printer.PrintObj(list, o.Out)
	}
	if len(statuses) == 0 {
		return cli.NoneFound(o.ErrOut, "pools", o.AllNamespaces, ns)
	}
	return printer.PrintObj(PoolTable(statuses, time.Now()), o.Out)
}

// PoolTable builds the table pool list prints; wide-only columns have priority 1.
func PoolTable(statuses []*pool.PoolStatus, now time.Time) *metav1.Table {
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string"},
		{Name: "Size", Type: "integer"},
		{Name: "Ready", Type: "integer"},
		{Name: "Starting", Type: "integer"},
		{Name: "Claimed", Type: "integer"},
		{Name: "Image", Type: "string"},
		{Name: "Profile", Type: "string"},
		{Name: "Network", Type: "string"},
		{Name: "Age", Type: "string"},
		{Name: "Problems", Type: "string"},
		{Name: "CPU", Type: "string", Priority: 1},
		{Name: "Memory", Type: "string", Priority: 1},
		{Name: "TTL", Type: "string", Priority: 1},
		{Name: "Idle-Timeout", Type: "string", Priority: 1},
	}}
	for _, st := range statuses {
		p := st.Pool
		obj := poolObject(st)
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells: []any{
				p.Name, int64(p.Size), int64(st.Ready), int64(st.Starting), int64(st.Claimed),
				p.Spec.Image, string(p.Spec.Profile), string(p.Spec.Network),
				duration.HumanDuration(now.Sub(p.CreationTimestamp.Time)),
				cli.OrNone(strings.Join(st.Problems, "; ")),
				p.Spec.CPU.String(), p.Spec.Memory.String(),
				durationOrNone(p.Spec.TTL), durationOrNone(p.Spec.IdleTimeout),
			},
			Object: runtime.RawExtension{Object: obj},
		})
	}
	return t
}

func durationOrNone(d time.Duration) string {
	if d == 0 {
		return "<none>"
	}
	return d.String()
}

// poolObject is a pool as -o json/yaml/jsonpath show it. It is not an API
// object (there is no Pool kind in any cluster: a pool is a PodTemplate and
// Pods), only the shape of this command's output.
func poolObject(st *pool.PoolStatus) *unstructured.Unstructured {
	p := st.Pool
	problems := make([]any, 0, len(st.Problems))
	for _, s := range st.Problems {
		problems = append(problems, s)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "agentkernel/v1",
		"kind":       "Pool",
		"metadata": map[string]any{
			"name":              p.Name,
			"namespace":         p.Namespace,
			"uid":               string(p.UID),
			"creationTimestamp": p.CreationTimestamp.UTC().Format(time.RFC3339),
		},
		"spec": map[string]any{
			"size":        int64(p.Size),
			"image":       p.Spec.Image,
			"profile":     string(p.Spec.Profile),
			"network":     string(p.Spec.Network),
			"cpu":         p.Spec.CPU.String(),
			"memory":      p.Spec.Memory.String(),
			"ttl":         p.Spec.TTL.String(),
			"idleTimeout": p.Spec.IdleTimeout.String(),
			"template":    pool.PoolTemplateName(p.Name),
		},
		"status": map[string]any{
			"ready":    int64(st.Ready),
			"starting": int64(st.Starting),
			"claimed":  int64(st.Claimed),
			"problems": problems,
		},
	}}
}
