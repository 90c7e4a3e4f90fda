package cmd

import (
	"context"
	"fmt"
	"io"
	"time"

	snapshotclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/kubectl/pkg/cmd/get"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/doctor"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var doctorLong = templates.LongDesc(`
	Check what this cluster and namespace give sandboxes, one line per finding (ok,
	warn or fail), each with what was found and what to do: the API server and its
	version, who you are, the namespace's Pod Security labels, every permission the
	plugin uses (SelfSubjectAccessReview), a default sandbox sent as a server-side
	dry run (Pod Security, LimitRanges, ResourceQuotas, webhooks), LimitRanges and
	quota room, RuntimeClasses (gVisor, Kata), the default StorageClass (how it
	binds, whether volumes grow) and VolumeSnapshotClasses (whether snapshot
	takes CSI snapshots or archives), the cluster's DNS as egress
	sandboxes will see it, and other NetworkPolicies that widen sandboxes' fences.

	Whether NetworkPolicy is enforced at all cannot be read from the API: --probe
	starts two small sandboxes for a few seconds, checks that the fenced one reaches
	the other only where its policy allows, and deletes both whatever happens.

	Exits non-zero when a check fails.`)

var doctorExample = templates.Examples(`
	# Is namespace agents ready for sandboxes?
	kubectl agentkernel doctor -n agents

	# Also prove that NetworkPolicy is enforced
	kubectl agentkernel doctor -n agents --probe

	# For scripts: every finding, with what to do
	kubectl agentkernel doctor -n agents -o json

	# Only the checks that did not pass
	kubectl agentkernel doctor -n agents -o jsonpath='{range .items[?(@.status!="ok")]}{.check}{"\n"}{end}'`)

// DoctorOptions checks a cluster and a namespace.
type DoctorOptions struct {
	PrintFlags *cli.PrintFlags
	Probe      bool
	ProbeImage string
	Timeout    time.Duration

	env doctor.Env
	cli.Clients
	genericiooptions.IOStreams
}

// NewDoctorOptions returns DoctorOptions writing to streams.
func NewDoctorOptions(streams genericiooptions.IOStreams) *DoctorOptions {
	return &DoctorOptions{PrintFlags: cli.NewPrintFlags("", cli.WithSort), ProbeImage: sandbox.DefaultImage, Timeout: 3 * time.Minute, IOStreams: streams}
}

// NewCmdDoctor returns the doctor command.
func NewCmdDoctor(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewDoctorOptions(streams)
	cmd := &cobra.Command{
		Use:                   "doctor [-n NAMESPACE] [--probe] [-o json|yaml|name|jsonpath=...|custom-columns=...]",
		DisableFlagsInUseLine: true,
		Short:                 "Check what the cluster and namespace give sandboxes",
		Long:                  doctorLong,
		Example:               doctorExample,
		Args:                  cobra.NoArgs,
		RunE:                  cli.CompleteValidateRun(o, func(_ *cobra.Command, _ []string) error { return o.Complete(f) }),
	}
	fl := cmd.Flags()
	o.PrintFlags.AddFlags(cmd)
	fl.BoolVar(&o.Probe, "probe", o.Probe, "Start two small sandboxes to check that NetworkPolicy is enforced (deleted afterwards)")
	fl.StringVar(&o.ProbeImage, "probe-image", o.ProbeImage, "Image of the probe's sandboxes; it needs sh, httpd, nc and timeout")
	fl.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long the probe may take")
	return cmd
}

// Complete builds clients (doctor asks its many small questions at once;
// the plugin's clients have no client-side rate limit, see clientrate.go).
func (o *DoctorOptions) Complete(f cmdutil.Factory) error {
	if err := o.Clients.Complete(f); err != nil {
		return err
	}
	snapshots, err := snapshotclient.NewForConfig(o.Config)
	if err != nil {
		return err
	}
	o.env = doctor.Env{Clientset: o.Clientset, Snapshots: snapshots, Namespace: o.Namespace, Server: o.Server}
	if o.Probe {
		o.env.Probe = &doctor.Probe{Image: o.ProbeImage, Timeout: o.Timeout, Exec: func(p *corev1.Pod) sandbox.Runner { return o.ExecIn(p) }}
		o.env.Progress = func(s string) { fmt.Fprintln(o.ErrOut, "doctor: "+s) }
	}
	return nil
}

// Validate checks the flags.
func (o *DoctorOptions) Validate() error {
	if err := o.PrintFlags.Validate(); err != nil {
		return err
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive")
	}
	return nil
}

// Run runs the checks and prints them; a failed check is an error.
func (o *DoctorOptions) Run(ctx context.Context) error {
	results := doctor.Run(ctx, &o.env)
	if err := printDoctor(o.Out, o.PrintFlags, o.Namespace, results); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if n := doctor.Failed(results); n > 0 {
		return fmt.Errorf("%d of %d findings failed (the lines marked fail)", n, len(results))
	}
	return nil
}

// printDoctor prints the findings: one line each (status, check, what was
// found -> what to do), or with -o a DoctorFindingList: the namespace, how
// many failed, and the findings as items, each with kind and metadata.name
// (its check) added for kubectl's printers.
func printDoctor(out io.Writer, pf *cli.PrintFlags, namespace string, results []doctor.Result) error {
	printer, err := pf.Printer(false)
	if err != nil {
		return err
	}
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Status", Type: "string"},
		{Name: "Check", Type: "string"},
		{Name: "Finding", Type: "string"},
	}}
	var items []unstructured.Unstructured
	for _, r := range results {
		obj, err := cli.OwnObject("DoctorFinding", r.Check, r)
		if err != nil {
			return err
		}
		items = append(items, *obj)
		line := r.Found
		if r.Action != "" {
			line += " -> " + r.Action
		}
		t.Rows = append(t.Rows, metav1.TableRow{Cells: []any{string(r.Status), r.Check, line}, Object: runtime.RawExtension{Object: obj}})
	}
	if pf.Own() {
		// Each line says what it is: no header, as before doctor had -o.
		if by := pf.HumanReadableFlags.SortBy; by != nil && *by != "" {
			printer = &get.SortingPrinter{Delegate: printers.NewTablePrinter(printers.PrintOptions{NoHeaders: true}), SortField: *by}
		} else {
			printer = printers.NewTablePrinter(printers.PrintOptions{NoHeaders: true})
		}
		return printer.PrintObj(t, out)
	}
	return printer.PrintObj(cli.OwnList("DoctorFindingList", items, map[string]any{
		"namespace": namespace,
		"failed":    int64(doctor.Failed(results)),
	}), out)
}
