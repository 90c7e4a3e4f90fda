package cmd

import (
	"context"
	"fmt"
	"os"
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
	Name             string
	Image            string
	PullPolicy       string
	CPU              string
	Memory           string
	EphemeralStorage string
	Profile          string
	Network          string
	ReadOnly         bool
	readOnlySet      bool
	RuntimeClass     string
	NodeSelector     []string
	ServiceAccount   string
	Env              []string
	SecretEnv        []string
	Labels           []string
	Ports            []string
	User             int64
	Wait             bool
	Timeout          time.Duration
	DryRun           cmdutil.DryRunStrategy
	CreateNamespace  bool

	PrintFlags *genericclioptions.PrintFlags
	printer    printers.ResourcePrinter

	spec         sandbox.Spec
	secretValues map[string]string
	// lookupEnv reads --secret-env values; os.LookupEnv outside tests.
	lookupEnv func(string) (string, bool)

	clients
	genericiooptions.IOStreams
}

// NewCreateOptions returns CreateOptions with the defaults of a restrictive sandbox.
func NewCreateOptions(streams genericiooptions.IOStreams) *CreateOptions {
	return &CreateOptions{
		Image:            sandbox.DefaultImage,
		CPU:              sandbox.DefaultCPU.String(),
		Memory:           sandbox.DefaultMemory.String(),
		EphemeralStorage: sandbox.DefaultEphemeralStorage.String(),
		Profile:          string(sandbox.ProfileRestrictive),
		User:             sandbox.DefaultUID,
		Wait:             true,
		Timeout:          5 * time.Minute,
		PrintFlags:       genericclioptions.NewPrintFlags("created").WithTypeSetter(scheme.Scheme),
		lookupEnv:        os.LookupEnv,
		IOStreams:        streams,
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
			writable root). --network and --read-only override a profile's choice. With no
			network, the deny-all NetworkPolicy is created before the Pod.

			By default create waits until the sandbox can run commands, and fails at once
			with the cluster's reason (ImagePullBackOff, Unschedulable, admission denial...)
			when it cannot start; a failed or interrupted create removes what it made.`),
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
	fl := cmd.Flags()
	fl.StringVar(&o.Image, "image", o.Image, "Container image; it needs /bin/sh (and tar for cp of directories)")
	fl.StringVar(&o.PullPolicy, "image-pull-policy", o.PullPolicy, "Always, IfNotPresent or Never (default: the cluster's default for the tag)")
	fl.StringVar(&o.CPU, "cpu", o.CPU, "CPU request and limit")
	fl.StringVar(&o.Memory, "memory", o.Memory, "Memory request and limit")
	fl.StringVar(&o.EphemeralStorage, "ephemeral-storage", o.EphemeralStorage, "Ephemeral storage request and limit; also the size limit of each writable directory")
	fl.StringVar(&o.Profile, "profile", o.Profile, "restrictive, moderate or permissive")
	fl.StringVar(&o.Network, "network", o.Network, "none, egress or open (default: the profile's)")
	fl.BoolVar(&o.ReadOnly, "read-only", o.ReadOnly, "Read-only root filesystem (default: the profile's)")
	fl.StringVar(&o.RuntimeClass, "runtime-class", o.RuntimeClass, "RuntimeClass, e.g. gvisor or kata, for a stronger boundary")
	fl.StringArrayVar(&o.NodeSelector, "node-selector", o.NodeSelector, "Node label the sandbox must run on (k=v, repeatable)")
	fl.StringVar(&o.ServiceAccount, "service-account", o.ServiceAccount, "ServiceAccount to run as (its token is still not mounted)")
	fl.StringArrayVar(&o.Env, "env", o.Env, "Environment variable (K=V, repeatable); visible in the Pod spec, so not for secrets")
	fl.StringArrayVar(&o.SecretEnv, "secret-env", o.SecretEnv, "Name of an environment variable of yours whose value goes into the sandbox through a Secret (repeatable)")
	fl.StringArrayVarP(&o.Labels, "label", "l", o.Labels, "Label for the sandbox's objects (k=v, repeatable)")
	fl.StringArrayVar(&o.Ports, "port", o.Ports, "Container port to declare, N or N/udp (repeatable)")
	fl.Int64Var(&o.User, "user", o.User, "UID (and GID) the sandbox runs as; never 0")
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
	o.readOnlySet = cmd.Flags().Changed("read-only")
	var err error
	if o.DryRun, err = cmdutil.GetDryRunStrategy(cmd); err != nil {
		return err
	}
	if err := o.complete(f); err != nil {
		return err
	}
	switch o.DryRun {
	case cmdutil.DryRunClient:
		err = o.PrintFlags.Complete("%s (dry run)")
	case cmdutil.DryRunServer:
		err = o.PrintFlags.Complete("%s (server dry run)")
	}
	if err != nil {
		return err
	}
	if o.output() != "" && o.output() != "name" {
		if o.printer, err = o.PrintFlags.ToPrinter(); err != nil {
			return err
		}
	}
	o.secretValues = map[string]string{}
	for _, name := range o.SecretEnv {
		v, ok := o.lookupEnv(name)
		if !ok {
			return fmt.Errorf("--secret-env %s: no such variable in your environment; export it first (its value is read from there, never from the command line)", name)
		}
		o.secretValues[name] = v
	}
	return o.buildSpec()
}

func (o *CreateOptions) output() string { return *o.PrintFlags.OutputFormat }

func (o *CreateOptions) buildSpec() error {
	s := sandbox.NewSpec(o.Name, o.Namespace)
	s.Image = o.Image
	s.ImagePullPolicy = corev1.PullPolicy(o.PullPolicy)
	profile, err := sandbox.ParseProfile(o.Profile)
	if err != nil {
		return err
	}
	s.Profile = profile
	s.Network, s.ReadOnlyRoot = profile.Defaults()
	if o.Network != "" {
		if s.Network, err = sandbox.ParseNetwork(o.Network); err != nil {
			return err
		}
	}
	if o.readOnlySet {
		s.ReadOnlyRoot = o.ReadOnly
	}
	if s.CPU, err = sandbox.ParseQuantity("--cpu", o.CPU); err != nil {
		return err
	}
	if s.Memory, err = sandbox.ParseQuantity("--memory", o.Memory); err != nil {
		return err
	}
	if s.EphemeralStorage, err = sandbox.ParseQuantity("--ephemeral-storage", o.EphemeralStorage); err != nil {
		return err
	}
	s.RuntimeClassName = o.RuntimeClass
	if s.NodeSelector, err = sandbox.ParseKeyValues("--node-selector", o.NodeSelector); err != nil {
		return err
	}
	s.ServiceAccountName = o.ServiceAccount
	env, err := sandbox.ParseKeyValues("--env", o.Env)
	if err != nil {
		return err
	}
	for _, kv := range o.Env { // keep the user's order
		k, _, _ := sandbox.ParseKeyValue("--env", kv)
		s.Env = append(s.Env, corev1.EnvVar{Name: k, Value: env[k]})
	}
	s.SecretEnvNames = o.SecretEnv
	if s.Labels, err = sandbox.ParseKeyValues("--label", o.Labels); err != nil {
		return err
	}
	for _, p := range o.Ports {
		port, err := sandbox.ParsePort(p)
		if err != nil {
			return err
		}
		s.Ports = append(s.Ports, port)
	}
	s.UID = o.User
	o.spec = s
	return nil
}

// Validate checks the spec without contacting the cluster.
func (o *CreateOptions) Validate() error {
	switch o.PullPolicy {
	case "", string(corev1.PullAlways), string(corev1.PullIfNotPresent), string(corev1.PullNever):
	default:
		return fmt.Errorf("--image-pull-policy must be Always, IfNotPresent or Never, not %q", o.PullPolicy)
	}
	if o.Timeout < 0 {
		return fmt.Errorf("--timeout must not be negative")
	}
	return o.spec.Validate()
}

// Run creates the sandbox (or shows what would be created) and prints it.
func (o *CreateOptions) Run(ctx context.Context) error {
	if o.DryRun == cmdutil.DryRunClient {
		return o.printDryRun()
	}
	created, err := sandbox.Create(ctx, o.Clientset, &o.spec, sandbox.CreateOptions{
		SecretValues:    o.secretValues,
		ServerDryRun:    o.DryRun == cmdutil.DryRunServer,
		CreateNamespace: o.CreateNamespace,
		Wait:            o.Wait && o.DryRun == cmdutil.DryRunNone,
		Timeout:         o.Timeout,
		Progress:        o.progress,
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
