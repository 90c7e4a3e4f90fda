package cmd

import (
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
)

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
	PrintFlags *cli.PrintFlags
	AgentsFile string

	genericiooptions.IOStreams
}

// NewAgentsOptions returns AgentsOptions writing to streams.
func NewAgentsOptions(streams genericiooptions.IOStreams) *AgentsOptions {
	return &AgentsOptions{PrintFlags: cli.NewPrintFlags("", cli.WithTable|cli.WithSort), IOStreams: streams}
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
	o.PrintFlags.AddFlags(cmd)
	cmd.Flags().StringVar(&o.AgentsFile, "agents-file", o.AgentsFile, "Agent presets file laid over the embedded ones (default: $XDG_CONFIG_HOME/agentkernel/agents.yaml, if it exists)")
	return cmd
}

// Validate checks the output format.
func (o *AgentsOptions) Validate() error { return o.PrintFlags.Validate() }

// Run prints the merged presets: a table, or a list of AgentPreset objects
// (apiVersion agentkernel/v1alpha1, as in presets files), each the preset's
// fields with kind and metadata.name added for kubectl's printers.
func (o *AgentsOptions) Run() error {
	printer, err := o.PrintFlags.Printer(false)
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
		obj, err := cli.OwnObject("AgentPreset", p.Name, p)
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
	if o.PrintFlags.Own() {
		return printer.PrintObj(t, o.Out)
	}
	list := cli.OwnList("AgentPresetList", items, nil)
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
