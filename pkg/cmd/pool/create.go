package pool

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/scheme"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var poolCreateExample = templates.Examples(`
	# Five default (restrictive) sandboxes, kept warm
	kubectl agentkernel pool create default --size 5

	# Claimed sandboxes of this pool stop after 2h, or after 30m with nothing running
	kubectl agentkernel pool create ci --size 20 --image golang:1.26 --cpu 2 --memory 4Gi --ttl 2h --idle-timeout 30m

	# Warm persistent sandboxes: each member has its own 20Gi workspace, bound while it
	# waits; a claim (create NAME --pool ci --persist) keeps it, and suspend/resume work
	kubectl agentkernel pool create ci --size 3 --persist=20Gi --storage-class fast

	# The PodTemplate that stores the pool, as an admin would review it
	kubectl agentkernel pool create ci --size 20 --dry-run=client -o yaml`)

// PoolCreateOptions creates a pool.
type PoolCreateOptions struct {
	Name   string
	Size   int
	DryRun cmdutil.DryRunStrategy

	Sandbox    *cli.SandboxFlags
	Persist    cli.PersistFlags
	PrintFlags *genericclioptions.PrintFlags
	printer    printers.ResourcePrinter
	pool       *pool.Pool

	cli.WaitFlags
	cli.Clients
	genericiooptions.IOStreams
}

// NewPoolCreateOptions returns PoolCreateOptions with the defaults of a restrictive sandbox.
func NewPoolCreateOptions(streams genericiooptions.IOStreams) *PoolCreateOptions {
	sf := cli.NewSandboxFlags()
	sf.NoCredentials = true // an --agent preset's credentials come with each claim
	return &PoolCreateOptions{
		WaitFlags:  cli.NewWaitFlags(5 * time.Minute),
		Sandbox:    sf,
		PrintFlags: genericclioptions.NewPrintFlags("created").WithTypeSetter(scheme.Scheme),
		IOStreams:  streams,
	}
}

// NewCmdPoolCreate returns the pool create command.
func NewCmdPoolCreate(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdPoolCreate(f, NewPoolCreateOptions(streams))
}

func newCmdPoolCreate(f cmdutil.Factory, o *PoolCreateOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "create NAME --size N [sandbox flags]",
		DisableFlagsInUseLine: true,
		Short:                 "Create a pool of warm sandboxes and wait until they are ready",
		Long: templates.LongDesc(`
			Create a pool: its definition (a PodTemplate named agentkernel-pool-NAME) and N
			warm sandboxes, each exactly what create with the same flags makes. It takes
			every flag create takes but --secret-env: secrets belong to a claim. --ttl and
			--idle-timeout start when a sandbox is claimed, never while it waits warm.

			With --persist each member gets its own workspace (a PersistentVolumeClaim named
			as the member), provisioned and bound while it waits and removed with it; a
			claim (create NAME --pool POOL --persist) keeps it as the sandbox's, which then
			suspends, resumes (as itself, not from the pool) and is deleted like any
			persistent sandbox.

			With --agent for a preset that has an install step, every member runs that step
			as it starts (without credentials: they come with each claim) and is ready only
			once it has finished, so a claim runs the agent at once; a member whose step
			failed is never claimed, and pool list says why.

			With --allow-host the members go out through the namespace's egress proxy
			(installed on first use, as create does) and reach the pool's hosts while
			they warm up; include the registry the install step needs.

			By default pool create waits until all N are ready and fails at once, with the
			cluster's reason, when they cannot start (an image that does not exist,
			Unschedulable...); a failed or interrupted pool create removes what it made.`),
		Example: poolCreateExample,
		RunE:    cli.CompleteValidateRun(o, func(cmd *cobra.Command, args []string) error { return o.Complete(f, cmd, args) }),
	}
	o.Sandbox.AddFlags(cmd)
	o.Persist.AddFlags(cmd)
	fl := cmd.Flags()
	fl.IntVar(&o.Size, "size", o.Size, "Number of warm sandboxes to keep")
	o.AddWaitFlags(fl, "every member is ready")
	cmdutil.AddDryRunFlag(cmd)
	o.PrintFlags.AddFlags(cmd)
	_ = cmd.MarkFlagRequired("size")
	return cli.SpeakFlags(cmd)
}

// Complete reads the flags, builds clients and the pool's definition.
func (o *PoolCreateOptions) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("pool create takes exactly one pool name (got %d): kubectl agentkernel pool create NAME --size N", len(args))
	}
	o.Name = args[0]
	if err := o.Sandbox.Complete(cmd); err != nil {
		return err
	}
	var err error
	if o.DryRun, err = cmdutil.GetDryRunStrategy(cmd); err != nil {
		return err
	}
	if err := o.Clients.Complete(f); err != nil {
		return err
	}
	if o.output() != "" && o.output() != "name" {
		if o.printer, err = o.PrintFlags.ToPrinter(); err != nil {
			return err
		}
	}
	return nil
}

func (o *PoolCreateOptions) output() string { return *o.PrintFlags.OutputFormat }

// Validate checks the pool without contacting the cluster.
func (o *PoolCreateOptions) Validate() error {
	if err := pool.ValidatePoolName(o.Name); err != nil {
		return err
	}
	if err := pool.ValidatePoolSize(o.Size, true); err != nil {
		return err
	}
	if err := o.Sandbox.Validate(); err != nil {
		return err
	}
	if err := o.WaitFlags.Validate(); err != nil {
		return err
	}
	if len(o.Sandbox.SecretEnv) > 0 {
		// Refused before the environment is read: the value has no business here.
		_, err := pool.NewPool(o.Name, sandbox.Spec{SecretEnvNames: o.Sandbox.SecretEnv}, o.Size)
		return err
	}
	spec, _, err := o.Sandbox.Spec(o.Name, o.Namespace)
	if err != nil {
		return err
	}
	if err := o.Persist.Apply(&spec); err != nil {
		return err
	}
	o.warmInstall(&spec)
	o.pool, err = pool.NewPool(o.Name, spec, o.Size)
	return err
}

// warmInstall makes the members of a pool for an --agent whose image lacks
// it run the preset's install step while they warm up, so that a claim
// gets the agent ready to run. Fenced by host name (--allow-host), a
// member reaches its pool's hosts through the egress proxy while it warms
// up, so the registry must be among them.
func (o *PoolCreateOptions) warmInstall(spec *sandbox.Spec) {
	if p := o.Sandbox.Preset; p != nil && !p.InImage() {
		spec.WarmInstall = p.Install
	}
}

// Run creates the pool (or shows it) and prints it.
func (o *PoolCreateOptions) Run(ctx context.Context) error {
	// Members made with --allow-host go out through the namespace's egress
	// proxy, as create's sandboxes do: installed on first use, and its
	// address is in every member's environment.
	if err := o.PrepareEgress(o.DryRun, o.ErrOut)(ctx, &o.pool.Spec); err != nil {
		return o.Explain(err, o.Namespace)
	}
	switch o.DryRun {
	case cmdutil.DryRunClient:
		return o.print(o.pool.PodTemplate(), "(dry run)")
	case cmdutil.DryRunServer:
		t, err := o.Clientset.CoreV1().PodTemplates(o.Namespace).Create(ctx, o.pool.PodTemplate(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return o.Explain(err, o.Namespace)
		}
		return o.print(t, "(server dry run)")
	}
	st, err := pool.CreatePool(ctx, o.Clientset, o.pool, pool.PoolOptions{
		Wait: o.Wait, Timeout: o.Timeout, Progress: poolProgress(o.ErrOut, o.Name),
	})
	if err != nil {
		return o.Explain(err, o.Namespace)
	}
	state := fmt.Sprintf("%d of %d ready", st.Ready, o.Size)
	if !o.Wait {
		state = fmt.Sprintf("%d members starting", st.Members())
	}
	t, err := o.Clientset.CoreV1().PodTemplates(o.Namespace).Get(ctx, pool.PoolTemplateName(o.Name), metav1.GetOptions{})
	if err != nil {
		return o.Explain(err, o.Namespace)
	}
	return o.print(t, "("+state+")")
}

func (o *PoolCreateOptions) print(t *corev1.PodTemplate, suffix string) error {
	switch o.output() {
	case "":
		_, err := fmt.Fprintf(o.Out, "pool/%s created %s\n", o.Name, suffix)
		return err
	case "name":
		_, err := fmt.Fprintf(o.Out, "pool/%s\n", o.Name)
		return err
	}
	return o.printer.PrintObj(t, o.Out)
}
