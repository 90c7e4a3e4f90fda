package cmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

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
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

var createExample = templates.Examples(`
	# A locked-down sandbox: no network, read-only root, 1 CPU, 1Gi memory
	kubectl agentkernel create demo

	# An agent that needs to reach its model API: egress to the internet only,
	# the key passed from your environment into a Secret (never into the Pod spec)
	ANTHROPIC_API_KEY=... kubectl agentkernel create claude --profile moderate \
	  --image node:22 --secret-env ANTHROPIC_API_KEY --memory 4Gi

	# Review what would be created, as an admin would see it
	kubectl agentkernel create demo --dry-run=client -o yaml

	# A namespace of its own, labelled to enforce Pod Security "restricted"
	kubectl agentkernel create demo -n agents --create-namespace

	# An agent as the sandbox's main process, to attach to (and detach from)
	kubectl agentkernel create work --agent claude --command
	kubectl agentkernel attach work

	# At once, from a pool of warm sandboxes (kubectl agentkernel pool create),
	# with a secret of its own and a TTL that starts now
	ANTHROPIC_API_KEY=... kubectl agentkernel create task-1 --pool agents --secret-env ANTHROPIC_API_KEY --ttl 2h`)

// CreateOptions creates a sandbox.
type CreateOptions struct {
	Name            string
	DryRun          cmdutil.DryRunStrategy
	CreateNamespace bool
	// Command makes the arguments after "--" (or the --agent preset's
	// command) the sandbox's main process, with stdin kept open and, with
	// TTY, a terminal: attach connects to it.
	Command bool
	TTY     bool
	Quiet   bool
	command []string

	Sandbox *cli.SandboxFlags
	Persist cli.PersistFlags
	// From fills the new sandbox with a workspace archive's files or
	// another sandbox's (createfrom.go).
	From string
	// fromHow is how --from's files reach the workspace (resolveFrom).
	fromHow    string
	Claim      *cli.PoolClaimFlags
	PrintFlags *genericclioptions.PrintFlags
	printer    printers.ResourcePrinter

	spec         sandbox.Spec
	secretValues map[string]string
	match        []string // with --pool: the flags the claim insists on

	cli.WaitFlags
	cli.Clients
	genericiooptions.IOStreams
}

// NewCreateOptions returns CreateOptions with the defaults of a restrictive sandbox.
func NewCreateOptions(streams genericiooptions.IOStreams) *CreateOptions {
	return &CreateOptions{
		WaitFlags:  cli.NewWaitFlags(5 * time.Minute),
		TTY:        true,
		Sandbox:    cli.NewSandboxFlags(),
		Claim:      &cli.PoolClaimFlags{},
		PrintFlags: genericclioptions.NewPrintFlags("created").WithTypeSetter(scheme.Scheme),
		IOStreams:  streams,
	}
}

// NewCmdCreate returns the create command.
func NewCmdCreate(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdCreate(f, NewCreateOptions(streams))
}

// newCmdCreate lets tests supply options (e.g. a fake environment).
func newCmdCreate(f cmdutil.Factory, o *CreateOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "create NAME [flags] [--command [-- COMMAND [args...]]]",
		DisableFlagsInUseLine: true,
		Short:                 "Create a hardened sandbox and wait until it can run commands",
		Long: templates.LongDesc(`
			Create a sandbox: a Pod that runs as a non-root user with no capabilities, a
			RuntimeDefault seccomp profile, no service-account token and size-limited
			writable directories at /workspace, /tmp and /home/sandbox. Every sandbox is
			admitted by Pod Security "restricted".

			Profiles: restrictive (default: no network, read-only root), moderate (egress to
			public addresses only, writable root), permissive (the namespace's networking,
			writable root). --network and --read-only override a profile's choice. The Pod
			is created behind a scheduling gate that is lifted only once its NetworkPolicy
			and Secret exist: a sandbox never runs without its fence.

			By default create waits until the sandbox can run commands, and fails at once
			with the cluster's reason (an image that does not exist, Unschedulable,
			admission denial...) when it cannot start; a failed or interrupted create
			removes what it made.`),
		Example: createExample,
		RunE:    cli.CompleteValidateRun(o, func(cmd *cobra.Command, args []string) error { return o.Complete(f, cmd, args) }),
	}
	o.Sandbox.AddFlags(cmd)
	o.Persist.AddFlags(cmd)
	cmd.Flags().StringVar(&o.From, "from", o.From, "Start with the work (/workspace and $HOME) of a sandbox of the namespace (a fork: a CSI clone where the storage can, else copied), a volume snapshot (snapshot NAME SNAPSHOT), or a workspace archive (snapshot --to FILE); implies --persist")
	o.Claim.AddFlags(cmd, f)
	fl := cmd.Flags()
	o.AddWaitFlags(fl, "the sandbox can run commands")
	fl.BoolVar(&o.CreateNamespace, "create-namespace", o.CreateNamespace, `Create the namespace, labelled pod-security.kubernetes.io/enforce=restricted, if it does not exist`)
	fl.BoolVar(&o.Command, "command", o.Command, "Run the command after '--' (default: the --agent preset's) as the sandbox's main process, with stdin kept open, for attach; the sandbox ends when it does")
	fl.BoolVar(&o.TTY, "tty", o.TTY, "With --command: give the main process a terminal")
	fl.BoolVarP(&o.Quiet, "quiet", "q", o.Quiet, "No progress on stderr")
	cmdutil.AddDryRunFlag(cmd)
	o.PrintFlags.AddFlags(cmd)
	return cli.SpeakFlags(cmd)
}

// Complete turns flags into a sandbox.Spec and builds clients.
func (o *CreateOptions) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	if dash := cmd.ArgsLenAtDash(); dash >= 0 {
		args, o.command = args[:dash], args[dash:]
		if !o.Command && len(o.command) > 0 {
			return fmt.Errorf("the arguments after '--' would be the sandbox's main process: add --command (kubectl agentkernel create NAME --command -- COMMAND...)")
		}
	}
	if len(args) != 1 {
		return fmt.Errorf("create takes exactly one sandbox name (got %d): kubectl agentkernel create NAME", len(args))
	}
	o.Name = args[0]
	if err := o.Sandbox.Complete(cmd); err != nil {
		return err
	}
	for _, n := range o.Sandbox.Notices {
		fmt.Fprintln(o.ErrOut, "note: "+n)
	}
	if cmd.Flags().Changed("tty") && !o.Command {
		return fmt.Errorf("--tty is for the main process of --command")
	}
	var err error
	if o.Claim.Pool != "" {
		if o.match, err = cli.ClaimMatch(cmd); err != nil {
			return err
		}
		o.match = append(o.match, o.Persist.ClaimMatch(cmd)...)
	}
	if o.DryRun, err = cmdutil.GetDryRunStrategy(cmd); err != nil {
		return err
	}
	if err := o.Clients.Complete(f); err != nil {
		return err
	}
	if o.printer, err = cli.ObjectPrinter(o.PrintFlags, o.DryRun); err != nil {
		return err
	}
	o.spec, o.secretValues, err = o.Sandbox.Spec(o.Name, o.Namespace)
	if err != nil {
		return err
	}
	if err := o.Persist.FromPreset(cmd, o.Sandbox.Preset); err != nil {
		return err
	}
	if o.From != "" && o.Persist.Persist == "" {
		o.Persist.Persist = sandbox.DefaultWorkspaceSize.String() // a fork keeps its work
	}
	if err := o.Persist.Apply(&o.spec); err != nil || !o.Command {
		return err
	}
	return o.completeMainProcess()
}

func (o *CreateOptions) output() string { return *o.PrintFlags.OutputFormat }

// Validate checks the spec without contacting the cluster.
func (o *CreateOptions) Validate() error {
	if err := o.Sandbox.Validate(); err != nil {
		return err
	}
	if err := o.WaitFlags.Validate(); err != nil {
		return err
	}
	if err := o.Claim.Validate(); err != nil {
		return err
	}
	if o.Claim.Pool != "" && o.CreateNamespace {
		return fmt.Errorf("--create-namespace cannot be used with --pool: a pool lives in a namespace that exists")
	}
	if err := o.validateFrom(); err != nil {
		return err
	}
	if o.Claim.Pool != "" && o.Command {
		return fmt.Errorf("--command cannot be used with --pool: a warm sandbox was started before the claim, without the command as its main process; leave out --pool, or run the command with kubectl agentkernel exec")
	}
	return o.spec.Validate()
}

// Run creates the sandbox (or shows what would be created) and prints it.
func (o *CreateOptions) Run(ctx context.Context) error {
	if o.Claim.Pool != "" {
		return o.runClaim(ctx)
	}
	if o.DryRun == cmdutil.DryRunClient {
		return o.clientDryRun(ctx)
	}
	prog := cli.NewProgress(o.ErrOut, o.Quiet || o.DryRun != cmdutil.DryRunNone)
	if err := o.resolveFrom(ctx, prog); err != nil {
		return err
	}
	report, stopStatus := prog.WaitStatus(ctx, o.Clientset, o.Namespace, o.Name)
	created, err := sandbox.Create(ctx, o.Clientset, &o.spec, sandbox.CreateOptions{
		SecretValues:    o.secretValues,
		ServerDryRun:    o.DryRun == cmdutil.DryRunServer,
		CreateNamespace: o.CreateNamespace,
		Wait:            o.Wait && o.DryRun == cmdutil.DryRunNone,
		Timeout:         o.Timeout,
		Progress:        report,
		Prepare:         o.PrepareEgress(o.DryRun, o.ErrOut),
	})
	stopStatus()
	if err != nil {
		return o.Explain(err, o.Namespace)
	}
	cli.WarnAdmission(o.ErrOut, created)
	o.warnOtherPolicies(ctx)
	if err := o.fill(ctx, created, prog); err != nil {
		return err
	}
	if err := o.prepare(ctx, created, prog); err != nil {
		return err
	}
	switch o.output() {
	case "":
		suffix := ""
		if o.DryRun == cmdutil.DryRunServer {
			suffix = " (server dry run)"
		}
		_, err = fmt.Fprintf(o.Out, "sandbox/%s created%s\n", o.Name, suffix)
		return err
	case "name":
		_, err = fmt.Fprintf(o.Out, "sandbox/%s\n", o.Name)
		return err
	}
	return o.printer.PrintObj(created.Pod, o.Out)
}

// printDryRun shows every object create would send, Secret values redacted.
func (o *CreateOptions) printDryRun() error {
	var objs []runtime.Object
	if o.CreateNamespace {
		objs = append(objs, &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: o.Namespace, Labels: sandbox.RestrictedNamespaceLabels()},
		})
	}
	if s := o.spec.Secret(o.secretValues); s != nil {
		objs = append(objs, sandbox.Redacted(s))
	}
	if np := o.spec.NetworkPolicy(); np != nil {
		objs = append(objs, np)
	}
	if w := o.spec.WorkspaceClaim(); w != nil {
		objs = append(objs, w)
	}
	objs = append(objs, o.spec.Pod())
	switch o.output() {
	case "":
		_, err := fmt.Fprintf(o.Out, "sandbox/%s created (dry run)\n", o.Name)
		return err
	case "name":
		_, err := fmt.Fprintf(o.Out, "sandbox/%s\n", o.Name)
		return err
	}
	list := &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
	for _, obj := range objs {
		list.Items = append(list.Items, runtime.RawExtension{Object: obj})
	}
	return o.printer.PrintObj(list, o.Out)
}

// runClaim is create --pool.
func (o *CreateOptions) runClaim(ctx context.Context) error {
	if o.DryRun != cmdutil.DryRunNone {
		return o.dryRunClaim(ctx)
	}
	// The status line's events are those of a cold fallback's Pod; a warm
	// member is Running already and has none to wait out.
	report, stopStatus := cli.NewProgress(o.ErrOut, o.Quiet).WaitStatus(ctx, o.Clientset, o.Namespace, o.Name)
	a, err := o.Acquire(ctx, &o.spec, o.secretValues, o.match, *o.Claim, sandbox.CreateOptions{
		Wait:     o.Wait,
		Timeout:  o.Timeout,
		Progress: report,
	})
	stopStatus()
	if err != nil {
		return err
	}
	defer cli.FinishClaim(a, o.ErrOut)
	// An --agent preset's install step runs in the claimed sandbox as in a
	// cold one (a pool's members are made without it); if it fails, the
	// sandbox goes.
	if err := o.prepare(ctx, &sandbox.Created{Pod: a.Pod, Secret: a.Secret}, cli.NewProgress(o.ErrOut, o.Quiet)); err != nil {
		if a.Warm && a.Spec.Workspace != nil {
			// The claimed workspace is the sandbox's root: it goes too.
			_, _ = sandbox.DeleteWorkspace(ctx, o.Clientset, o.Namespace, o.Name)
		}
		return err
	}
	how := cli.AcquiredHow(a, o.Claim.Pool)
	switch o.output() {
	case "":
		_, err = fmt.Fprintf(o.Out, "sandbox/%s created (%s)\n", o.Name, how)
		return err
	case "name":
		fmt.Fprintf(o.ErrOut, "sandbox/%s: %s\n", o.Name, how)
		_, err = fmt.Fprintf(o.Out, "sandbox/%s\n", o.Name)
		return err
	}
	fmt.Fprintf(o.ErrOut, "sandbox/%s: %s\n", o.Name, how)
	return o.printer.PrintObj(a.Pod, o.Out)
}

// dryRunClaim shows the sandbox a claim would get, as a cold create from
// the pool's definition would make it (a claimed member is the same Pod
// under a generated name): the pool must be read for that. Secret values
// are redacted; nothing is claimed or created.
func (o *CreateOptions) dryRunClaim(ctx context.Context) error {
	p, err := pool.GetPool(ctx, o.Clientset, o.Namespace, o.Claim.Pool)
	if err != nil {
		return o.Explain(err, o.Namespace)
	}
	s, err := pool.ClaimedSpec(p, &o.spec, o.match)
	if err != nil {
		return err
	}
	suffix := fmt.Sprintf("dry run: as claimed from pool %s", p.Name)
	if o.DryRun == cmdutil.DryRunServer {
		// Admission of the sandbox a cold fallback would make.
		if _, err := sandbox.Create(ctx, o.Clientset, s, sandbox.CreateOptions{SecretValues: o.secretValues, ServerDryRun: true}); err != nil {
			return o.Explain(err, o.Namespace)
		}
		suffix = fmt.Sprintf("server dry run: as created cold from pool %s", p.Name)
	}
	switch o.output() {
	case "":
		_, err := fmt.Fprintf(o.Out, "sandbox/%s created (%s)\n", o.Name, suffix)
		return err
	case "name":
		_, err := fmt.Fprintf(o.Out, "sandbox/%s\n", o.Name)
		return err
	}
	var objs []runtime.Object
	if sec := s.Secret(o.secretValues); sec != nil {
		objs = append(objs, sandbox.Redacted(sec))
	}
	if np := s.NetworkPolicy(); np != nil {
		objs = append(objs, np)
	}
	objs = append(objs, s.Pod())
	list := &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
	for _, obj := range objs {
		list.Items = append(list.Items, runtime.RawExtension{Object: obj})
	}
	return o.printer.PrintObj(list, o.Out)
}

// completeMainProcess makes create --command's arguments (or the preset's
// command) the sandbox's main process. An agent that must be installed
// first is held until it is (see prepare).
func (o *CreateOptions) completeMainProcess() error {
	command := o.command
	if len(command) == 0 && o.Sandbox.Preset != nil {
		command = o.Sandbox.Preset.Command
	}
	if len(command) == 0 {
		return fmt.Errorf("--command needs the command after '--' (kubectl agentkernel create NAME --command -- COMMAND...), or an --agent preset that has one")
	}
	o.spec.Command, o.spec.Stdin, o.spec.TTY = command, true, o.TTY
	if p := o.Sandbox.Preset; p != nil && !p.InImage() {
		o.spec.HoldCommand = true
		if !o.Wait && o.DryRun == cmdutil.DryRunNone {
			return fmt.Errorf("--agent %s installs the agent once the sandbox runs, so --command needs --wait", p.Name)
		}
	}
	return nil
}

// prepare installs an --agent preset's agent in the new sandbox and starts
// a held main process. If that fails, the sandbox is removed again: a
// failed create leaves nothing.
func (o *CreateOptions) prepare(ctx context.Context, created *sandbox.Created, prog *cli.Progress) error {
	p := o.Sandbox.Preset
	if o.DryRun != cmdutil.DryRunNone || p == nil || p.InImage() {
		return nil
	}
	if !o.Wait && !warmInstalled(created.Pod, p) {
		prog.Linef("warning: --agent %s installs the agent once the sandbox runs; without --wait it is not installed (run its install step yourself: kubectl agentkernel agents -o yaml)", p.Name)
		return nil
	}
	err := installAgent(ctx, &o.Clients, created.Pod, p, prog)
	if err == nil && o.spec.HoldCommand {
		err = startMain(ctx, o.ExecIn(created.Pod))
	}
	if err == nil {
		return nil
	}
	if _, derr := created.Delete(ctx, o.Clientset, 2*time.Minute); derr != nil {
		err = field.Also(err, derr)
	}
	return err
}

// clientDryRunLookups bounds what a client-side dry run asks the cluster
// (who you are, where DNS is, which policies overlap): it must still
// print, quickly, when the cluster is slow or away.
const clientDryRunLookups = 5 * time.Second

// warnOtherPolicies says, on stderr, which NetworkPolicies besides the
// sandbox's own select it and allow it traffic. Policies add up: the
// sandbox may do whatever any of them allows, whatever its own fence says.
func (o *CreateOptions) warnOtherPolicies(ctx context.Context) {
	warnWideningPolicies(ctx, &o.Clients, o.ErrOut, &o.spec)
}

// warnWideningPolicies is warnOtherPolicies for any command that makes a
// sandbox (run, pool members).
func warnWideningPolicies(ctx context.Context, c *cli.Clients, errOut io.Writer, spec *sandbox.Spec) {
	if spec.Network == sandbox.NetworkOpen {
		return // no fence of ours to widen
	}
	widening, err := sandbox.OtherPolicies(ctx, c.Clientset, spec.Namespace, spec.Pod().Labels)
	if err != nil {
		fmt.Fprintf(errOut, "Warning: could not check whether other NetworkPolicies widen the fence of sandbox/%s: %v\n", spec.Name, c.Explain(err, spec.Namespace))
		return
	}
	for _, w := range widening {
		var what []string
		if w.Egress {
			what = append(what, "egress")
		}
		if w.Ingress {
			what = append(what, "ingress")
		}
		fmt.Fprintf(errOut, "Warning: NetworkPolicy %q also selects sandbox/%s and allows it %s; policies add up, so its rules widen the sandbox's fence (review it: kubectl get networkpolicy %s -n %s -o yaml)\n",
			w.Policy.Name, spec.Name, strings.Join(what, " and "), w.Policy.Name, spec.Namespace)
	}
}

// clientDryRun shows what create would send: the cluster is asked only
// what Create would ask it before creating anything.
func (o *CreateOptions) clientDryRun(ctx context.Context) error {
	lookups, cancel := context.WithTimeout(ctx, clientDryRunLookups)
	defer cancel()
	if err := o.spec.FromNamespace(lookups, o.Clientset); err != nil {
		return err
	}
	o.spec.FromCluster(lookups, o.Clientset)
	o.warnOtherPolicies(lookups)
	if err := o.PrepareEgress(o.DryRun, o.ErrOut)(lookups, &o.spec); err != nil {
		return err
	}
	return o.printDryRun()
}
