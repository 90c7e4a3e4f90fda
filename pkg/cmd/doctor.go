package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/doctor"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var doctorLong = templates.LongDesc(`
	Check what this cluster and namespace give sandboxes, one line per finding (ok,
	warn or fail), each with what was found and what to do: the API server and its
	version, who you are, the namespace's Pod Security labels, every permission the
	plugin uses (SelfSubjectAccessReview), a default sandbox sent as a server-side
	dry run (Pod Security, LimitRanges, ResourceQuotas, webhooks), LimitRanges and
	quota room, RuntimeClasses (gVisor, Kata), the cluster's DNS as egress
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

	# For scripts
	kubectl agentkernel doctor -n agents -o json`)

// DoctorOptions checks a cluster and a namespace.
type DoctorOptions struct {
	Output     string
	Probe      bool
	ProbeImage string
	Timeout    time.Duration

	env doctor.Env
	clients
	genericiooptions.IOStreams
}

// NewDoctorOptions returns DoctorOptions writing to streams.
func NewDoctorOptions(streams genericiooptions.IOStreams) *DoctorOptions {
	return &DoctorOptions{ProbeImage: sandbox.DefaultImage, Timeout: 3 * time.Minute, IOStreams: streams}
}

// NewCmdDoctor returns the doctor command.
func NewCmdDoctor(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewDoctorOptions(streams)
	cmd := &cobra.Command{
		Use:                   "doctor [-n NAMESPACE] [--probe] [-o json]",
		DisableFlagsInUseLine: true,
		Short:                 "Check what the cluster and namespace give sandboxes",
		Long:                  doctorLong,
		Example:               doctorExample,
		Args:                  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.Output, "output", "o", o.Output, "json, or empty for one line per finding")
	fl.BoolVar(&o.Probe, "probe", o.Probe, "Start two small sandboxes to check that NetworkPolicy is enforced (deleted afterwards)")
	fl.StringVar(&o.ProbeImage, "probe-image", o.ProbeImage, "Image of the probe's sandboxes; it needs sh, httpd, nc and timeout")
	fl.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long the probe may take")
	return cmd
}

// Complete builds clients (doctor asks its many small questions at once;
// the plugin's clients have no client-side rate limit, see clientrate.go).
func (o *DoctorOptions) Complete(f cmdutil.Factory) error {
	if err := o.complete(f); err != nil {
		return err
	}
	o.env = doctor.Env{Clientset: o.Clientset, Namespace: o.Namespace, Server: o.Server}
	if o.Probe {
		o.env.Probe = &doctor.Probe{Image: o.ProbeImage, Timeout: o.Timeout, Exec: func(p *corev1.Pod) sandbox.Runner { return o.execIn(p) }}
		o.env.Progress = func(s string) { fmt.Fprintln(o.ErrOut, "doctor: "+s) }
	}
	return nil
}

// Validate checks the flags.
func (o *DoctorOptions) Validate() error {
	switch o.Output {
	case "", "json":
	default:
		return fmt.Errorf("--output must be json or empty, not %q", o.Output)
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive")
	}
	return nil
}

// Run runs the checks and prints them; a failed check is an error.
func (o *DoctorOptions) Run(ctx context.Context) error {
	results := doctor.Run(ctx, &o.env)
	if err := printDoctor(o.Out, o.Output, o.Namespace, results); err != nil {
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

func printDoctor(out io.Writer, format, namespace string, results []doctor.Result) error {
	if format == "json" {
		b, err := json.MarshalIndent(struct {
			Namespace string          `json:"namespace"`
			Failed    int             `json:"failed"`
			Results   []doctor.Result `json:"results"`
		}{namespace, doctor.Failed(results), results}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, string(b))
		return err
	}
	w := printers.GetNewTabWriter(out)
	for _, r := range results {
		line := r.Found
		if r.Action != "" {
			line += " -> " + r.Action
		}
		if _, err := fmt.Fprintf(w, "%s\t%s\t%s\n", r.Status, r.Check, line); err != nil {
			return err
		}
	}
	return w.Flush()
}
