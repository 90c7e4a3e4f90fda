package cmd

import (
	"context"
	"fmt"
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

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
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
	kubectl agentkernel create demo -n agents --create-namespace`)

// CreateOptions creates a sandbox.
type CreateOptions struct {
	Name            string
	Wait            bool
	Timeout         time.Duration
	DryRun          cmdutil.DryRunStrategy
	CreateNamespace bool

	Sandbox    *SandboxFlags
	PrintFlags *genericclioptions.PrintFlags
	printer    printers.ResourcePrinter

	spec         sandbox.Spec
	secretValues map[string]string

	clients
	genericiooptions.IOStreams
}

// NewCreateOptions returns CreateOptions with the defaults of a restrictive sandbox.
func NewCreateOptions(streams genericiooptions.IOStreams) *CreateOptions {
	return &CreateOptions{
		Wait:       true,
		Timeout:    5 * time.Minute,
		Sandbox:    NewSandboxFlags(),
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
		Use:                   "create NAME [flags]",
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
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f, cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.Sandbox.AddFlags(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&o.Wait, "wait", o.Wait, "Wait until the sandbox can run commands")
	fl.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait; 0 waits for ever")
	fl.BoolVar(&o.CreateNamespace, "create-namespace", o.CreateNamespace, `Create the namespace, labelled pod-security.kubernetes.io/enforce=restricted, if it does not exist`)
	cmdutil.AddDryRunFlag(cmd)
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Complete turns flags into a sandbox.Spec and builds clients.
func (o *CreateOptions) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("create takes exactly one sandbox name (got %d): kubectl agentkernel create NAME", len(args))
	}
	o.Name = args[0]
	if err := o.Sandbox.Complete(cmd); err != nil {
		return err
	}
	var err error
	if o.DryRun, err = cmdutil.GetDryRunStrategy(cmd); err != nil {
		return err
	}
	if err := o.complete(f); err != nil {
		return err
	}
	if o.printer, err = objectPrinter(o.PrintFlags, o.DryRun); err != nil {
		return err
	}
	o.spec, o.secretValues, err = o.Sandbox.Spec(o.Name, o.Namespace)
	return err
}

func (o *CreateOptions) output() string { return *o.PrintFlags.OutputFormat }

// Validate checks the spec without contacting the cluster.
func (o *CreateOptions) Validate() error {
	if err := o.Sandbox.Validate(); err != nil {
		return err
	}
	if o.Timeout < 0 {
		return fmt.Errorf("--timeout must not be negative")
	}
	return o.spec.Validate()
}

// Run creates the sandbox (or shows what would be created) and prints it.
func (o *CreateOptions) Run(ctx context.Context) error {
	if o.DryRun == cmdutil.DryRunClient {
		if err := o.prepareEgress(o.DryRun, o.ErrOut)(ctx, &o.spec); err != nil {
			return err
		}
		return o.printDryRun()
	}
	created, err := sandbox.Create(ctx, o.Clientset, &o.spec, sandbox.CreateOptions{
		SecretValues:    o.secretValues,
		ServerDryRun:    o.DryRun == cmdutil.DryRunServer,
		CreateNamespace: o.CreateNamespace,
		Wait:            o.Wait && o.DryRun == cmdutil.DryRunNone,
		Timeout:         o.Timeout,
		Progress:        o.progress,
		Prepare:         o.prepareEgress(o.DryRun, o.ErrOut),
	})
	if err != nil {
		return o.explain(err, o.Namespace)
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

// progress tells, on stderr, why a sandbox is taking long: only states that
// carry the cluster's message (an image pull being retried, Unschedulable).
func (o *CreateOptions) progress(state string) {
	if strings.Contains(state, ": ") && !strings.HasPrefix(state, "SchedulingGated") {
		fmt.Fprintf(o.ErrOut, "waiting for sandbox/%s: %s\n", o.Name, state)
	}
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
