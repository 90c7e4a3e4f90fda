package cmd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var usageExample = templates.Examples(`
	# What each sandbox of the namespace spent through the egress proxy, per model API
	kubectl agentkernel usage

	# One sandbox's, as JSON
	kubectl agentkernel usage claude-x7k2p -o json`)

// UsageOptions shows what sandboxes spent on model APIs through their
// namespace's egress proxy (injected keys), as the proxy records it.
type UsageOptions struct {
	Name       string
	PrintFlags *cli.PrintFlags

	cli.Clients
	genericiooptions.IOStreams
}

// NewUsageOptions returns UsageOptions writing to streams.
func NewUsageOptions(streams genericiooptions.IOStreams) *UsageOptions {
	return &UsageOptions{PrintFlags: cli.NewPrintFlags("", cli.WithTable), IOStreams: streams}
}

// NewCmdUsage returns the usage command.
func NewCmdUsage(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewUsageOptions(streams)
	cmd := &cobra.Command{
		Use:                   "usage [NAME] [-o json|yaml|name|jsonpath=...|custom-columns=...]",
		DisableFlagsInUseLine: true,
		Short:                 "Show the requests, bytes and tokens each sandbox spent on model APIs through the egress proxy",
		Long: templates.LongDesc(`
			Show what sandboxes spent on model APIs whose keys the namespace's egress proxy
			injects (--allow-host with --agent, or --inject): per sandbox and API host, the
			requests sent, those refused, the bytes each way, and the input and output
			tokens the API's own responses reported. The proxy records it in the ConfigMap
			agentkernel-egress-usage every few seconds while the sandbox lives.`),
		Example:           usageExample,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE: cli.CompleteValidateRun(o, func(_ *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Name = args[0]
			}
			return o.Complete(f)
		}),
	}
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Validate checks the output format.
func (o *UsageOptions) Validate() error { return o.PrintFlags.Validate() }

// usageRow is one sandbox's use of one API, as -o json|yaml prints it.
type usageRow struct {
	Sandbox string `json:"sandbox"`
	Pod     string `json:"pod"`
	Host    string `json:"host"`
	keys.HostUsage
}

// Run reads the usage record and prints it.
func (o *UsageOptions) Run(ctx context.Context) error {
	usage, err := sandbox.ReadUsage(ctx, o.Clientset, o.Namespace)
	var none *sandbox.NoUsageError
	if errors.As(err, &none) {
		return fmt.Errorf("%w (is the proxy there? kubectl agentkernel egress status -n %s)", err, o.Namespace)
	}
	if err != nil {
		return o.Explain(err, o.Namespace)
	}
	// Sandbox names by Pod name (a claimed sandbox's Pod keeps its pool's name).
	names := map[string]string{}
	if o.Name != "" {
		pod, err := sandbox.Find(ctx, o.Clientset, o.Namespace, o.Name)
		if err != nil {
			return o.Explain(err, o.Namespace)
		}
		names[pod.Name] = o.Name
		usage = map[string]keys.Usage{pod.Name: usage[pod.Name]}
	} else if pods, err := sandbox.List(ctx, o.Clientset, o.Namespace, ""); err == nil {
		for i := range pods {
			names[pods[i].Name] = sandbox.NameOf(&pods[i])
		}
	}
	var rows []usageRow
	for _, pod := range slices.Sorted(maps.Keys(usage)) {
		name := names[pod]
		if name == "" {
			name = pod + " (gone)"
		}
		for _, host := range sandbox.UsageHosts(usage[pod]) {
			rows = append(rows, usageRow{Sandbox: name, Pod: pod, Host: host, HostUsage: usage[pod].Hosts[host]})
		}
	}
	if len(rows) == 0 {
		what := fmt.Sprintf("namespace %q", o.Namespace)
		if o.Name != "" {
			what = "sandbox " + o.Name
		}
		_, err := fmt.Fprintf(o.ErrOut, "No model API use recorded for %s: only sandboxes whose keys the egress proxy injects are counted.\n", what)
		return err
	}
	printer, err := o.PrintFlags.Printer(false)
	if err != nil {
		return err
	}
	if !o.PrintFlags.Own() {
		var items []unstructured.Unstructured
		for _, r := range rows {
			u, err := cli.OwnObject("SandboxUsage", r.Sandbox, r)
			if err != nil {
				return err
			}
			items = append(items, *u)
		}
		return printer.PrintObj(cli.OwnList("SandboxUsageList", items, nil), o.Out)
	}
	return printer.PrintObj(usageTable(rows), o.Out)
}

func usageTable(rows []usageRow) *metav1.Table {
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Sandbox", Type: "string"},
		{Name: "Host", Type: "string"},
		{Name: "Requests", Type: "integer"},
		{Name: "Refused", Type: "integer"},
		{Name: "Sent", Type: "string"},
		{Name: "Received", Type: "string"},
		{Name: "Input-Tokens", Type: "integer"},
		{Name: "Output-Tokens", Type: "integer"},
		{Name: "Pod", Type: "string", Priority: 1},
	}}
	for _, r := range rows {
		t.Rows = append(t.Rows, metav1.TableRow{Cells: []any{
			r.Sandbox, r.Host, r.Requests, r.Refused, byteSize(r.BytesSent), byteSize(r.BytesGot), r.InputTokens, r.OutputTokens, r.Pod,
		}, Object: runtime.RawExtension{}})
	}
	return t
}

func byteSize(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%dMi", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%dKi", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
