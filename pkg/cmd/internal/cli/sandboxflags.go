package cli

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// SandboxFlags are the choices that shape a sandbox. create, run, pool
// create and the MCP server share them, so every way of making a sandbox
// takes the same flags with the same meaning.
type SandboxFlags struct {
	Image            string
	PullPolicy       string
	CPU              string
	Memory           string
	EphemeralStorage string
	Profile          string
	Network          string
	ReadOnly         bool
	RuntimeClass     string
	NodeSelector     []string
	ServiceAccount   string
	Env              []string
	SecretEnv        []string
	Labels           []string
	Ports            []string
	UID              int64
	TTL              time.Duration
	AllowEgress      []string
	DNS              []string
	// Agent names a preset (pkg/agents) whose defaults fill the flags not
	// given; AgentsFile overrides the user's presets file.
	Agent      string
	AgentsFile string
	// Preset is the preset Agent chose, once Complete ran (nil without one).
	Preset      *agents.Preset
	IdleTimeout time.Duration
	AllowHosts  []string
	// AcceptAdmissionChanges keeps a sandbox the cluster's admission weakened.
	AcceptAdmissionChanges bool
	// InjectFlags: the model keys the egress proxy adds (injectflags.go).
	InjectFlags

	readOnlySet bool
	uidSet      bool
	// NoCredentials: --agent takes no credentials here (pool create: they
	// belong to each claim, never to a warm member).
	NoCredentials bool
	// LookupEnv reads --secret-env values; os.LookupEnv outside tests.
	LookupEnv func(string) (string, bool)
}

// NewSandboxFlags returns the flags of a default, restrictive sandbox.
func NewSandboxFlags() *SandboxFlags {
	return &SandboxFlags{
		Image:            sandbox.DefaultImage,
		CPU:              sandbox.DefaultCPU.String(),
		Memory:           sandbox.DefaultMemory.String(),
		EphemeralStorage: sandbox.DefaultEphemeralStorage.String(),
		Profile:          string(sandbox.ProfileRestrictive),
		UID:              sandbox.DefaultUID,
		LookupEnv:        os.LookupEnv,
		InjectFlags:      InjectFlags{InjectKeys: true},
	}
}

// AddFlags registers the flags on cmd.
func (f *SandboxFlags) AddFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.Image, "image", f.Image, "Container image; it needs /bin/sh (and tar for cp of directories)")
	fl.StringVar(&f.PullPolicy, "image-pull-policy", f.PullPolicy, "Always, IfNotPresent or Never (default: the cluster's default for the tag)")
	fl.StringVar(&f.CPU, "cpu", f.CPU, "CPU request and limit")
	fl.StringVar(&f.Memory, "memory", f.Memory, "Memory request and limit")
	fl.StringVar(&f.EphemeralStorage, "ephemeral-storage", f.EphemeralStorage, "Ephemeral storage request and limit; also the size limit of each writable directory")
	fl.StringVar(&f.Profile, "profile", f.Profile, "restrictive, moderate or permissive")
	fl.StringVar(&f.Network, "network", f.Network, "none, egress or open (default: the profile's)")
	fl.BoolVar(&f.ReadOnly, "read-only", f.ReadOnly, "Read-only root filesystem (default: the profile's)")
	fl.StringVar(&f.RuntimeClass, "runtime-class", f.RuntimeClass, "RuntimeClass, e.g. gvisor or kata, for a stronger boundary")
	fl.StringArrayVar(&f.NodeSelector, "node-selector", f.NodeSelector, "Node label the sandbox must run on (k=v, repeatable)")
	fl.StringVar(&f.ServiceAccount, "service-account", f.ServiceAccount, "ServiceAccount to run as (its token is still not mounted)")
	fl.StringArrayVar(&f.Env, "env", f.Env, "Environment variable (K=V, repeatable); visible in the Pod spec, so not for secrets")
	fl.StringArrayVar(&f.SecretEnv, "secret-env", f.SecretEnv, "Name of an environment variable of yours whose value goes into the sandbox through a Secret (repeatable)")
	fl.StringArrayVarP(&f.Labels, "label", "l", f.Labels, "Label for the sandbox's objects (k=v, repeatable)")
	fl.StringArrayVar(&f.Ports, "port", f.Ports, "Container port to declare, N or N/udp (repeatable)")
	fl.Int64Var(&f.UID, "uid", f.UID, "UID (and GID) the sandbox runs as; never 0 (default: the first of the namespace's UID range where it has one, as on OpenShift)")
	fl.DurationVar(&f.TTL, "ttl", f.TTL, "Stop the sandbox after this long, enforced by the cluster even if no client is left (e.g. 2h; 0: no limit)")
	f.addEgressFlags(cmd)
	f.addAgentFlags(cmd)
	fl.DurationVar(&f.IdleTimeout, "idle-timeout", f.IdleTimeout, "Stop the sandbox once nothing but its PID 1 has run in it for this long, freeing its node (e.g. 30m; 0: never)")
	fl.BoolVar(&f.AcceptAdmissionChanges, "accept-admission-changes", f.AcceptAdmissionChanges, "Keep the sandbox even if the cluster's admission (a mutating webhook or policy) changed its Pod in ways that weaken its hardening; the changes are printed as warnings")
	fl.StringArrayVar(&f.AllowHosts, "allow-host", f.AllowHosts, "Host the sandbox may reach over HTTP(S), through the namespace's egress proxy: HOST[:PORT] (port 443 if none), *.example.com for its subdomains, or an IP or CIDR (repeatable); nothing else is reachable")
	f.addFlags(cmd)
}

// Complete notes which flags were given. cmd is the command the flags
// were added to.
func (f *SandboxFlags) Complete(cmd *cobra.Command) error {
	f.readOnlySet = cmd.Flags().Changed("read-only")
	f.uidSet = cmd.Flags().Changed("uid")
	// --user is kubectl's: the kubeconfig user. A UID there is a slip of the
	// fingers from earlier versions of this plugin, not a user name.
	if u := cmd.Flags().Lookup("user"); u != nil && u.Changed {
		if _, err := strconv.ParseInt(u.Value.String(), 10, 64); err == nil {
			return fmt.Errorf("--user %s is the kubeconfig user to act as (as in kubectl); to run the sandbox as UID %s, use --uid %s", u.Value, u.Value, u.Value)
		}
	}
	f.injections, f.Notices = nil, nil
	if err := f.complete(&f.AllowHosts); err != nil {
		return err
	}
	return f.applyAgent(cmd)
}

// Spec turns the flags into a sandbox.Spec and reads the values of
// --secret-env from the environment.
func (f *SandboxFlags) Spec(name, namespace string) (sandbox.Spec, map[string]string, error) {
	s := sandbox.NewSpec(name, namespace)
	s.Image = f.Image
	s.ImagePullPolicy = corev1.PullPolicy(f.PullPolicy)
	profile, err := sandbox.ParseProfile(f.Profile)
	if err != nil {
		return s, nil, err
	}
	s.Profile = profile
	s.Network, s.ReadOnlyRoot = profile.Defaults()
	if f.Network != "" {
		if s.Network, err = sandbox.ParseNetwork(f.Network); err != nil {
			return s, nil, err
		}
	}
	if f.readOnlySet {
		s.ReadOnlyRoot = f.ReadOnly
	}
	if s.CPU, err = sandbox.ParseQuantity("--cpu", f.CPU); err != nil {
		return s, nil, err
	}
	if s.Memory, err = sandbox.ParseQuantity("--memory", f.Memory); err != nil {
		return s, nil, err
	}
	if s.EphemeralStorage, err = sandbox.ParseQuantity("--ephemeral-storage", f.EphemeralStorage); err != nil {
		return s, nil, err
	}
	s.RuntimeClassName = f.RuntimeClass
	if s.NodeSelector, err = sandbox.ParseKeyValues("--node-selector", f.NodeSelector); err != nil {
		return s, nil, err
	}
	s.ServiceAccountName = f.ServiceAccount
	env, err := sandbox.ParseKeyValues("--env", f.Env)
	if err != nil {
		return s, nil, err
	}
	for _, kv := range f.Env { // keep the user's order
		k, _, _ := sandbox.ParseKeyValue("--env", kv)
		s.Env = append(s.Env, corev1.EnvVar{Name: k, Value: env[k]})
	}
	s.SecretEnvNames = f.SecretEnv
	if s.Labels, err = sandbox.ParseKeyValues("--label", f.Labels); err != nil {
		return s, nil, err
	}
	for _, p := range f.Ports {
		port, err := sandbox.ParsePort(p)
		if err != nil {
			return s, nil, err
		}
		s.Ports = append(s.Ports, port)
	}
	s.UID, s.UIDChosen = f.UID, f.uidSet
	s.TTL = f.TTL
	s.Agent = f.Agent // provenance: the preset the sandbox was made from
	if err := f.egressSpec(&s); err != nil {
		return s, nil, err
	}
	s.IdleTimeout = f.IdleTimeout
	s.AcceptAdmissionChanges = f.AcceptAdmissionChanges
	if len(f.AllowHosts) > 0 {
		if s.AllowHosts, err = fence.CanonicalAllowHosts(f.AllowHosts); err != nil {
			return s, nil, err
		}
		// The proxy route replaces the profile's network; an explicit
		// --network other than none is refused by Spec.Validate.
		if f.Network == "" {
			s.Network = sandbox.NetworkNone
		}
	}
	values := map[string]string{}
	for _, n := range f.SecretEnv {
		v, ok := f.LookupEnv(n)
		if !ok {
			return s, nil, fmt.Errorf("--secret-env %s: no such variable in your environment; export it first (its value is read from there, never from the command line)", n)
		}
		values[n] = v
	}
	s.Inject = slices.Clone(f.injections)
	for _, in := range s.Inject {
		if f.NoCredentials {
			break // a pool's members: the claims bring the keys
		}
		v, ok := f.LookupEnv(in.Variable)
		if !ok || v == "" {
			return s, nil, fmt.Errorf("--inject %s: no such variable in your environment; export it first (the namespace's egress proxy adds its value to the sandbox's requests to %s; it never enters the sandbox)", in.Variable, in.Host)
		}
		values[in.Variable] = v
	}
	return s, values, nil
}

// Validate checks what Spec cannot: flag values with no Spec field.
func (f *SandboxFlags) Validate() error {
	switch f.PullPolicy {
	case "", string(corev1.PullAlways), string(corev1.PullIfNotPresent), string(corev1.PullNever):
	default:
		return fmt.Errorf("--image-pull-policy must be Always, IfNotPresent or Never, not %q", f.PullPolicy)
	}
	return nil
}

// addAgentFlags registers --agent and --agents-file with the sandbox flags.
func (f *SandboxFlags) addAgentFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.Agent, "agent", f.Agent, "Agent preset whose defaults (image, install step, command, credentials, network, resources) fill the flags you do not give; list them with: kubectl agentkernel agents")
	fl.StringVar(&f.AgentsFile, "agents-file", f.AgentsFile, "Agent presets file laid over the embedded ones (default: $XDG_CONFIG_HOME/agentkernel/agents.yaml, if it exists)")
	_ = cmd.RegisterFlagCompletionFunc("agent", func(c *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		file, _ := c.Flags().GetString("agents-file")
		set, err := agents.Load(file, file != "")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, p := range set.All() {
			names = append(names, p.Name+"\t"+p.Description)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
}

// applyAgent fills the flags the user did not give from the --agent preset,
// and adds the preset's credentials to --secret-env, failing (before
// anything is created) when one it needs is not in the environment.
// Explicit flags always win: a flag given keeps its value, --env and
// --secret-env decide for the names they give, and an explicit --profile
// also decides network and read-only root unless those flags are given.
func (f *SandboxFlags) applyAgent(cmd *cobra.Command) error {
	if f.Agent == "" {
		return nil
	}
	set, err := agents.Load(f.AgentsFile, f.AgentsFile != "")
	if err != nil {
		return err
	}
	p, err := set.Get(f.Agent)
	if err != nil {
		return err
	}
	fl := cmd.Flags()
	fill := func(flag string, into *string, value string) {
		if value != "" && !fl.Changed(flag) {
			*into = value
		}
	}
	fill("image", &f.Image, p.Image)
	fill("cpu", &f.CPU, p.CPU)
	fill("memory", &f.Memory, p.Memory)
	fill("ephemeral-storage", &f.EphemeralStorage, p.EphemeralStorage)
	fill("profile", &f.Profile, p.Profile)
	if !fl.Changed("profile") {
		fill("network", &f.Network, p.Network)
		if p.ReadOnly != nil && !fl.Changed("read-only") {
			f.ReadOnly, f.readOnlySet = *p.ReadOnly, true
		}
	}

	plain := map[string]bool{}
	for _, kv := range f.Env {
		if k, _, err := sandbox.ParseKeyValue("--env", kv); err == nil {
			plain[k] = true
		}
	}
	secret := map[string]bool{}
	for _, n := range f.SecretEnv {
		secret[n] = true
	}
	keys := make([]string, 0, len(p.Env))
	for k := range p.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var env []string
	for _, k := range keys {
		if !plain[k] && !secret[k] {
			env = append(env, k+"="+p.Env[k])
		}
	}
	f.Env = append(env, f.Env...)

	// Fenced by host name, the agent still needs its own hosts (its model
	// APIs, its install step's registry); the user's --allow-host add to them.
	if len(f.AllowHosts) > 0 {
		f.AllowHosts = append(slices.Clone(p.Hosts), f.AllowHosts...)
	}

	f.Preset = p
	if f.NoCredentials {
		// A pool's members hold no keys, but are made with the
		// placeholders and base URLs of those its claims bring.
		if _, err := f.fromPreset(p, p.Credentials.All(), len(f.AllowHosts) > 0); err != nil {
			return err
		}
		for _, in := range f.injections {
			f.AllowHosts = append(f.AllowHosts, in.Host)
		}
		f.Notices = nil // nothing is passed: nothing is left out
		return nil
	}
	names, err := p.Credentials.Resolve(p.Name, f.LookupEnv, func(n string) bool { return plain[n] || secret[n] })
	if err != nil {
		return err
	}
	if names, err = f.fromPreset(p, names, len(f.AllowHosts) > 0); err != nil {
		return err
	}
	for _, in := range f.injections {
		f.AllowHosts = append(f.AllowHosts, in.Host) // a preset's hosts may not name it
	}
	f.SecretEnv = append(slices.Clone(f.SecretEnv), names...)
	return nil
}

// addEgressFlags registers the flags that say where an egress sandbox may
// connect.
func (f *SandboxFlags) addEgressFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.AllowEgress, "allow-egress", f.AllowEgress,
		"Allow egress only to CIDR[:PORT[/PROTO]] (repeatable; implies --network egress): e.g. 203.0.113.0/24:443 or [2001:db8::1]:443. "+
			"Private, link-local, loopback and metadata addresses stay blocked unless the CIDR lies inside them")
	fl.StringArrayVar(&f.DNS, "dns", f.DNS,
		"DNS server an egress sandbox may query, CIDR[:PORT] over UDP and TCP (repeatable; default: the cluster's, as found from its kube-dns Service), e.g. 169.254.20.10 for NodeLocal DNSCache")
}

// egressSpec puts --allow-egress and --dns into s. An allow-list makes the
// network egress unless --network says otherwise, which is then an error;
// Spec.Validate refuses --dns on a network that is not egress.
func (f *SandboxFlags) egressSpec(s *sandbox.Spec) error {
	if len(f.AllowEgress) > 0 && len(f.AllowHosts) > 0 {
		// Two different fences: addresses opened in the NetworkPolicy, or
		// no network but the namespace's egress proxy, which checks names.
		return fmt.Errorf("--allow-egress and --allow-host cannot be combined: --allow-host sends everything through the namespace's egress proxy, which admits host names (and IPs or CIDRs: --allow-host 203.0.113.0/24:443); use one of them")
	}
	for _, a := range f.AllowEgress {
		d, err := fence.ParseEgress("--allow-egress", a)
		if err != nil {
			return err
		}
		s.AllowEgress = append(s.AllowEgress, d)
	}
	for _, a := range f.DNS {
		d, err := fence.ParseDNSServer(a)
		if err != nil {
			return err
		}
		s.DNS = append(s.DNS, d)
	}
	// An allow-list narrows egress, so asking for one asks for egress. --dns
	// alone does not: it must never turn a sandbox without network into one
	// that reaches the internet.
	if len(s.AllowEgress) > 0 {
		if f.Network != "" && s.Network != sandbox.NetworkEgress {
			return fmt.Errorf("--allow-egress is a list of egress destinations; it cannot go with --network %s", f.Network)
		}
		s.Network = sandbox.NetworkEgress
	}
	return nil
}
