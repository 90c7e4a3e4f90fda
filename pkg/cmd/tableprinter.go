package cmd

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

// printFlags are kubectl get's print flags (-o json|yaml|name|jsonpath|
// go-template|custom-columns|wide, --no-headers, --show-labels, --sort-by,
// -L) for a command of ours, so that every command prints as kubectl get
// does and only the table columns are ours. A command names the formats it
// has no use for (no table: no wide; no name: no name printing), and the
// default ("" unless defaultFormat says otherwise) is the command's own.
type printFlags struct {
	*get.PrintFlags

	without       []string // format families this command does not take
	defaultFormat string
}

// printFeature is a flag of kubectl get's printing that a command takes.
type printFeature int

const (
	withTable      printFeature = 1 << iota // the default output is a table: -o wide, --show-labels, -L
	withSort                                // --sort-by
	withoutName                             // no -o name: what it prints has no name
	withoutDefault                          // -o "" is not a format of its own
)

// newPrintFlags returns kubectl get's print flags with -o defaultFormat,
// trimmed to the features named.
func newPrintFlags(defaultFormat string, features printFeature) *printFlags {
	pf := get.NewGetPrintFlags()
	*pf.OutputFormat = defaultFormat
	f := &printFlags{PrintFlags: pf, defaultFormat: defaultFormat}
	h := pf.HumanReadableFlags
	h.ShowKind = nil // one kind per command: nothing to tell apart
	if features&withTable == 0 {
		h.ShowLabels, h.ColumnLabels = nil, nil
		f.without = append(f.without, "wide")
	}
	if features&withSort == 0 {
		h.SortBy = nil
	}
	if features&withoutName != 0 {
		f.without = append(f.without, "name")
	}
	if features&withoutDefault != 0 {
		f.without = append(f.without, "")
	}
	return f
}

// formats are the -o values the command takes, its default first, then in
// kubectl get's order.
func (f *printFlags) formats() []string {
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

// addFlags registers -o, --no-headers and the rest of kubectl get's printing
// flags this command takes.
func (f *printFlags) addFlags(cmd *cobra.Command) {
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

// output is -o as given ("go-template" when only --template is).
func (f *printFlags) output() string {
	out := *f.OutputFormat
	if out == "" && f.TemplateFlags.TemplateArgument != nil && *f.TemplateFlags.TemplateArgument != "" {
		return "go-template"
	}
	return out
}

// own is whether the command prints in its own form: its table (with
// -o wide too), or for a command without one its own text.
func (f *printFlags) own() bool {
	out := f.output()
	return out == "" || out == "wide" && !slices.Contains(f.without, "wide")
}

// validate checks -o without printing anything.
func (f *printFlags) validate() error {
	_, err := f.toPrinter(false)
	return err
}

// toPrinter returns kubectl's printer for -o (for the command's table: the
// table printer, with a NAMESPACE column when withNamespace), sorting by
// --sort-by as kubectl get does, lists and tables alike.
func (f *printFlags) toPrinter(withNamespace bool) (printers.ResourcePrinter, error) {
	out := f.output()
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

func (f *printFlags) outputError(got string) error {
	formats := slices.DeleteFunc(f.formats(), func(s string) bool { return s == "" })
	return fmt.Errorf("--output must be %s or %s, or one of %s; not %q", formats[0], formats[1], strings.Join(formats[2:], ", "), got)
}

// ownList is a List of our own objects, as -o json|yaml|jsonpath print it.
func ownList(kind string, items []unstructured.Unstructured, fields map[string]any) *unstructured.UnstructuredList {
	obj := map[string]any{"apiVersion": ownAPIVersion, "kind": kind}
	for k, v := range fields {
		obj[k] = v
	}
	return &unstructured.UnstructuredList{Object: obj, Items: items}
}

// ownObject is a value of ours (a struct with json tags) as an object the
// printers take: its fields, and apiVersion, kind and, when named,
// metadata.name (what -o name prints).
func ownObject(kind, name string, v any) (*unstructured.Unstructured, error) {
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
