package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/kubectl/pkg/cmd/get"
)

// ownAPIVersion is the apiVersion of what our commands print that is no
// API object (agent presets, doctor findings, versions, egress status):
// -o json|yaml|name|jsonpath|custom-columns need an apiVersion and a kind,
// and none of these is served by any cluster.
const ownAPIVersion = "agentkernel/v1"

// PrintFlags are kubectl get's print flags (-o json|yaml|name|jsonpath|
// go-template|custom-columns|wide, --no-headers, --show-labels, --sort-by,
// -L) for a command of ours, so that every command prints as kubectl get
// does and only the table columns are ours. A command names the formats it
// has no use for (no table: no wide; no name: no name printing), and the
// default ("" unless defaultFormat says otherwise) is the command's own.
type PrintFlags struct {
	*get.PrintFlags

	without       []string // format families this command does not take
	defaultFormat string
}

// PrintFeature is a flag of kubectl get's printing that a command takes.
type PrintFeature int

const (
	WithTable      PrintFeature = 1 << iota // the default output is a table: -o wide, --show-labels, -L
	WithSort                                // --sort-by
	WithoutName                             // no -o name: what it prints has no name
	WithoutDefault                          // -o "" is not a format of its own
)

// NewPrintFlags returns kubectl get's print flags with -o defaultFormat,
// trimmed to the features named.
func NewPrintFlags(defaultFormat string, features PrintFeature) *PrintFlags {
	pf := get.NewGetPrintFlags()
	*pf.OutputFormat = defaultFormat
	f := &PrintFlags{PrintFlags: pf, defaultFormat: defaultFormat}
	h := pf.HumanReadableFlags
	h.ShowKind = nil // one kind per command: nothing to tell apart
	if features&WithTable == 0 {
		h.ShowLabels, h.ColumnLabels = nil, nil
		f.without = append(f.without, "wide")
	}
	if features&WithSort == 0 {
		h.SortBy = nil
	}
	if features&WithoutName != 0 {
		f.without = append(f.without, "name")
	}
	if features&WithoutDefault != 0 {
		f.without = append(f.without, "")
	}
	return f
}

// formats are the -o values the command takes, its default first, then in
// kubectl get's order.
func (f *PrintFlags) formats() []string {
	var out []string
	if f.defaultFormat != "" {
		out = append(out, f.defaultFormat)
	}
	for _, s := range f.AllowedFormats() {
		if s != f.defaultFormat && !slices.Contains(f.without, s) {
			out = append(out, s)
		}
	}
	return out
}

// AddFlags registers -o, --no-headers and the rest of kubectl get's printing
// flags this command takes.
func (f *PrintFlags) AddFlags(cmd *cobra.Command) {
	f.JSONYamlPrintFlags.AddFlags(cmd)
	f.NamePrintFlags.AddFlags(cmd)
	f.TemplateFlags.AddFlags(cmd)
	f.HumanReadableFlags.AddFlags(cmd)
	f.CustomColumnsFlags.AddFlags(cmd)
	formats := f.formats()
	cmd.Flags().StringVarP(f.OutputFormat, "output", "o", *f.OutputFormat,
		"Output format. One of: ("+strings.Join(formats, ", ")+"). As in kubectl get: custom-columns, go-template and jsonpath templates see what -o yaml shows.")
	_ = cmd.RegisterFlagCompletionFunc("output", func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		var comps []string
		for _, s := range formats {
			if strings.HasPrefix(s, toComplete) {
				comps = append(comps, s)
			}
		}
		return comps, cobra.ShellCompDirectiveNoFileComp
	})
	cmd.Flags().BoolVar(f.NoHeaders, "no-headers", *f.NoHeaders, "Leave out the header line (of the table, or of -o custom-columns)")
}

// Output is -o as given ("go-template" when only --template is).
func (f *PrintFlags) Output() string {
	out := *f.OutputFormat
	if out == "" && f.TemplateFlags.TemplateArgument != nil && *f.TemplateFlags.TemplateArgument != "" {
		return "go-template"
	}
	return out
}

// Own is whether the command prints in its own form: its table (with
// -o wide too), or for a command without one its own text.
func (f *PrintFlags) Own() bool {
	out := f.Output()
	return out == "" || out == "wide" && !slices.Contains(f.without, "wide")
}

// Validate checks -o without printing anything.
func (f *PrintFlags) Validate() error {
	_, err := f.Printer(false)
	return err
}

// Printer returns kubectl's printer for -o (for the command's table: the
// table printer, with a NAMESPACE column when withNamespace), sorting by
// --sort-by as kubectl get does, lists and tables alike.
func (f *PrintFlags) Printer(withNamespace bool) (printers.ResourcePrinter, error) {
	out := f.Output()
	family, _, _ := strings.Cut(out, "=")
	if slices.Contains(f.without, family) {
		return nil, f.outputError(out)
	}
	f.HumanReadableFlags.WithNamespace = withNamespace
	p, err := f.ToPrinter()
	if genericclioptions.IsNoCompatiblePrinterError(err) {
		return nil, f.outputError(out)
	}
	if err != nil {
		return nil, fmt.Errorf("--output %s: %w", out, err)
	}
	if by := f.HumanReadableFlags.SortBy; by != nil && *by != "" {
		p = &get.SortingPrinter{Delegate: p, SortField: *by}
	}
	return p, nil
}

func (f *PrintFlags) outputError(got string) error {
	formats := slices.DeleteFunc(f.formats(), func(s string) bool { return s == "" })
	return fmt.Errorf("--output must be %s or %s, or one of %s; not %q", formats[0], formats[1], strings.Join(formats[2:], ", "), got)
}

// OwnList is a List of our own objects, as -o json|yaml|jsonpath print it.
func OwnList(kind string, items []unstructured.Unstructured, fields map[string]any) *unstructured.UnstructuredList {
	obj := map[string]any{"apiVersion": ownAPIVersion, "kind": kind}
	for k, v := range fields {
		obj[k] = v
	}
	return &unstructured.UnstructuredList{Object: obj, Items: items}
}

// OwnObject is a value of ours (a struct with json tags) as an object the
// printers take: its fields, and apiVersion, kind and, when named,
// metadata.name (what -o name prints).
func OwnObject(kind, name string, v any) (*unstructured.Unstructured, error) {
	// Through JSON, so that the fields are exactly what json tags say
	// (omitempty, omitzero), numbers as int64 the way unstructured wants.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("printing %s %s: %w", kind, name, err)
	}
	fields := map[string]any{}
	if err := utiljson.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("printing %s %s: %w", kind, name, err)
	}
	u := &unstructured.Unstructured{Object: fields}
	u.SetAPIVersion(ownAPIVersion)
	u.SetKind(kind)
	if name != "" {
		u.SetName(name)
	}
	return u, nil
}

// OrNone is a table cell for a value that may be empty: "<none>", as
// kubectl get prints it.
func OrNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
