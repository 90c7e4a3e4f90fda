package cmd

import (
	"fmt"
	"os"
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

	readOnlySet bool
	// noCredentials: --agent takes no credentials here (pool create: they
	// belong to each claim, never to a warm member).
	noCredentials bool
	// lookupEnv reads --secret-env values; os.LookupEnv outside tests.
	lookupEnv func(string) (string, bool)
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
		lookupEnv:        os.LookupEnv,
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
	fl.Int64Var(&f.UID, "uid", f.UID, "UID (and GID) the sandbox runs as; never 0")
	fl.DurationVar(&f.TTL, "ttl", f.TTL, "Stop the sandbox after this long, enforced by the cluster even if no client is left (e.g. 2h; 0: no limit)")
	f.addEgressFlags(cmd)
	f.addAgentFlags(cmd)
	fl.DurationVar(&f.IdleTimeout, "idle-timeout", f.IdleTimeout, "Stop the sandbox once nothing but its PID 1 has run in it for this long, freeing its node (e.g. 30m; 0: never)")
	fl.StringArrayVar(&f.AllowHosts, "allow-host", f.AllowHosts, "Host the sandbox may reach over HTTP(S), through the namespace's egress proxy: HOST[:PORT] (port 443 if none), *.example.com for its subdomains, or an IP or CIDR (repeatable); nothing else is reachable")
}

// Complete notes which flags were given. cmd is the command the flags
// were added to.
func (f *SandboxFlags) Complete(cmd *cobra.Command) error {
	f.readOnlySet = cmd.Flags().Changed("read-only")
	// --user is kubectl's: the kubeconfig user. A UID there is a slip of the
	// fingers from earlier versions of this plugin, not a user name.
	if u := cmd.Flags().Lookup("user"); u != nil && u.Changed {
		if _, err := strconv.ParseInt(u.Value.String(), 10, 64); err == nil {
			return fmt.Errorf("--user %s is the kubeconfig user to act as (as in kubectl); to run the sandbox as UID %s, use --uid %s", u.Value, u.Value, u.Value)
		}
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
	s.UID = f.UID
	s.TTL = f.TTL
	s.Agent = f.Agent // provenance: the preset the sandbox was made from
	if err := f.egressSpec(&s); err != nil {
		return s, nil, err
	}
	s.IdleTimeout = f.IdleTimeout
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
		v, ok := f.lookupEnv(n)
		if !ok {
			return s, nil, fmt.Errorf("--secret-env %s: no such variable in your environment; export it first (its value is read from there, never from the command line)", n)
		}
		values[n] = v
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
