package cli

import (
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// ObjectPrinter completes print flags as kubectl does for a command with
// --dry-run ("created (dry run)") and returns the printer for -o, or nil
// when the command prints its own line (no -o, or -o name).
func ObjectPrinter(pf *genericclioptions.PrintFlags, dryRun cmdutil.DryRunStrategy) (printers.ResourcePrinter, error) {
	var err error
	switch dryRun {
	case cmdutil.DryRunClient:
		err = pf.Complete("%s (dry run)")
	case cmdutil.DryRunServer:
		err = pf.Complete("%s (server dry run)")
	}
	if err != nil {
		return nil, err
	}
	if out := *pf.OutputFormat; out == "" || out == "name" {
		return nil, nil
	}
	return pf.ToPrinter()
}
