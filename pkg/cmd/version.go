package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

// VersionOptions prints the plugin's own version; it never contacts a cluster.
type VersionOptions struct {
	PrintFlags *cli.PrintFlags

	genericiooptions.IOStreams
}

// NewVersionOptions returns VersionOptions writing to streams.
func NewVersionOptions(streams genericiooptions.IOStreams) *VersionOptions {
	return &VersionOptions{PrintFlags: cli.NewPrintFlags("", cli.WithoutName), IOStreams: streams}
}

// NewCmdVersion returns the version command.
func NewCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	o := NewVersionOptions(streams)
	cmd := &cobra.Command{
		Use:   "version [-o json|yaml|jsonpath=...]",
		Short: "Print the plugin's version",
		Example: templates.Examples(`
			# The version alone, for scripts
			kubectl agentkernel version -o jsonpath='{.version}'`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Validate checks the output format.
func (o *VersionOptions) Validate() error { return o.PrintFlags.Validate() }

// Run prints the version: a line, or through kubectl's printers an object
// of kind Version (its fields, with apiVersion and kind added).
func (o *VersionOptions) Run() error {
	info := version.Get()
	if !o.PrintFlags.Own() {
		printer, err := o.PrintFlags.Printer(false)
		if err != nil {
			return err
		}
		obj, err := cli.OwnObject("Version", "", info)
		if err != nil {
			return err
		}
		return printer.PrintObj(obj, o.Out)
	}
	line := "kubectl-agentkernel " + info.Version
	if info.Commit != "" {
		line += " (commit " + info.Commit
		if info.Date != "" {
			line += ", built " + info.Date
		}
		line += ")"
	}
	_, err := fmt.Fprintf(o.Out, "%s %s %s\n", line, info.GoVersion, info.Platform)
	return err
}
