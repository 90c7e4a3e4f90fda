package cmd

import (
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

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
	if f.noCredentials {
		return nil
	}
	names, err := p.Credentials.Resolve(p.Name, f.lookupEnv, func(n string) bool { return plain[n] || secret[n] })
	if err != nil {
		return err
	}
	f.SecretEnv = append(slices.Clone(f.SecretEnv), names...)
	return nil
}

var agentsExample = templates.Examples(`
	# The presets --agent can name, and where each came from
	kubectl agentkernel agents

	# Everything a preset sets
	kubectl agentkernel agents -o yaml

	# The image of each, for scripts
	kubectl agentkernel agents -o custom-columns=NAME:.metadata.name,IMAGE:.image --no-headers

	# With a presets file of your own laid over the embedded ones
	kubectl agentkernel agents --agents-file ./team-agents.yaml`)

// AgentsOptions lists the agent presets.
type AgentsOptions struct {
	PrintFlags *printFlags
	AgentsFile string

	genericiooptions.IOStreams
}

// NewAgentsOptions returns AgentsOptions writing to streams.
func NewAgentsOptions(streams genericiooptions.IOStreams) *AgentsOptions {
	return &AgentsOptions{PrintFlags: newPrintFlags("", withTable|withSort), IOStreams: streams}
}

// NewCmdAgents returns the agents command.
func NewCmdAgents(streams genericiooptions.IOStreams) *cobra.Command {
	o := NewAgentsOptions(streams)
	cmd := &cobra.Command{
		Use:   "agents [-o wide|yaml|json|name|jsonpath=...|custom-columns=...]",
		Short: "List the agent presets --agent can name",
		Long: templates.LongDesc(`
			List the agent presets: the defaults --agent NAME gives create and run (image,
			install step, command, the environment variables that carry the agent's
			credentials, network and resources).

			Presets are data: they ship embedded in the plugin, and a file of your own
			($XDG_CONFIG_HOME/agentkernel/agents.yaml, or --agents-file) overrides fields of
			an embedded preset or adds presets. SOURCE says where each came from.`),
		Example: agentsExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	o.PrintFlags.addFlags(cmd)
	cmd.Flags().StringVar(&o.AgentsFile, "agents-file", o.AgentsFile, "Agent presets file laid over the embedded ones (default: $XDG_CONFIG_HOME/agentkernel/agents.yaml, if it exists)")
	return cmd
}

// Validate checks the output format.
func (o *AgentsOptions) Validate() error { return o.PrintFlags.validate() }

// Run prints the merged presets: a table, or a list of AgentPreset objects
// (apiVersion agentkernel/v1alpha1, as in presets files), each the preset's
// fields with kind and metadata.name added for kubectl's printers.
func (o *AgentsOptions) Run() error {
	printer, err := o.PrintFlags.toPrinter(false)
	if err != nil {
		return err
	}
	set, err := agents.Load(o.AgentsFile, o.AgentsFile != "")
	if err != nil {
		return err
	}
	presets := set.All()
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string"},
		{Name: "Description", Type: "string"},
		{Name: "Source", Type: "string"},
		{Name: "Image", Type: "string", Priority: 1},
		{Name: "Install", Type: "string", Priority: 1},
		{Name: "Credentials", Type: "string", Priority: 1},
	}}
	var items []unstructured.Unstructured
	for _, p := range presets {
		obj, err := ownObject("AgentPreset", p.Name, p)
		if err != nil {
			return err
		}
		obj.SetAPIVersion(agents.APIVersion)
		items = append(items, *obj)
		install := "-"
		if !p.InImage() {
			install = "yes"
		}
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells:  []any{p.Name, p.Description, p.Source, p.Image, install, credentialsText(p.Credentials)},
			Object: runtime.RawExtension{Object: obj},
		})
	}
	if o.PrintFlags.own() {
		return printer.PrintObj(t, o.Out)
	}
	list := ownList("AgentPresetList", items, nil)
	list.SetAPIVersion(agents.APIVersion)
	return printer.PrintObj(list, o.Out)
}

// credentialsText sums up the variables a preset needs: "A, one of B|C, [D]".
func credentialsText(c agents.Credentials) string {
	var parts []string
	parts = append(parts, c.Required...)
	if len(c.AnyOf) > 0 {
		parts = append(parts, "one of "+strings.Join(c.AnyOf, "|"))
	}
	for _, n := range c.Optional {
		parts = append(parts, "["+n+"]")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
