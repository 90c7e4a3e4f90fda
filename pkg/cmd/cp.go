package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

var cpExample = templates.Examples(`
	# Put a repository into the sandbox's /workspace
	kubectl agentkernel cp ./my-repo demo:/workspace/

	# Relative sandbox paths start at /workspace
	kubectl agentkernel cp demo:my-repo/report.md ./report.md

	# A sandbox in another namespace
	kubectl agentkernel cp agents/demo:/workspace/out ./out`)

// CpOptions copies files and directories into and out of a sandbox.
type CpOptions struct {
	Src, Dst transfer.FileSpec
	// MaxBytes and MaxFiles bound a copy out of the sandbox ("" / 0: the
	// sandbox's ephemeral-storage limit, and one file per 4 KiB of it).
	MaxBytes string
	MaxFiles int64
	maxBytes resource.Quantity

	cli.Clients
	genericiooptions.IOStreams
}

// NewCpOptions returns CpOptions writing to streams.
func NewCpOptions(streams genericiooptions.IOStreams) *CpOptions {
	return &CpOptions{IOStreams: streams}
}

// NewCmdCp returns the cp command.
func NewCmdCp(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdCp(f, NewCpOptions(streams))
}

// newCmdCp lets tests supply options with a recording executor.
func newCmdCp(f cmdutil.Factory, o *CpOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "cp SRC DST",
		DisableFlagsInUseLine: true,
		Short:                 "Copy files and directories into and out of a sandbox",
		Long: templates.LongDesc(`
			Copy a file or directory between this machine and a sandbox; one side is
			NAME:PATH (or NAMESPACE/NAME:PATH). Data streams as tar through the exec
			connection: nothing is buffered whole, nothing rides in an argument list.

			If DST is an existing directory or ends in '/', SRC is copied into it;
			otherwise SRC is copied to the name DST. A local SRC that is a symlink is
			followed; links inside a directory are copied as links.

			Files coming out of a sandbox are checked: absolute names, '..', sparse
			files, device files and links that do not lead down from where they are
			(absolute, with '..', or through a link that climbs) are refused or
			skipped, so no later copy can make a kept link lead out. A copy out stops at --max-bytes of file content and
			--max-files entries; both default to what the sandbox can hold (its
			ephemeral-storage limit, one file per 4 KiB of it). An image without tar can
			still copy a single file.`),
		Example:           cpExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE:              cli.CompleteValidateRun(o, func(_ *cobra.Command, args []string) error { return o.Complete(f, args) }),
	}
	cmd.Flags().StringVar(&o.MaxBytes, "max-bytes", o.MaxBytes, "Copying out: stop after this much file content, e.g. 500Mi (default: the sandbox's ephemeral-storage limit)")
	cmd.Flags().Int64Var(&o.MaxFiles, "max-files", o.MaxFiles, "Copying out: stop after this many entries (default: one per 4 KiB of the sandbox's ephemeral-storage limit, at least 100000)")
	o.Resume.AddNoResumeFlag(cmd.Flags())
	return cli.SpeakFlags(cmd)
}

// Complete parses the two file specs and builds clients.
func (o *CpOptions) Complete(f cmdutil.Factory, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("cp takes a source and a destination, one of them NAME:PATH (got %d arguments)", len(args))
	}
	var err error
	if o.Src, err = transfer.ParseFileSpec(args[0]); err != nil {
		return err
	}
	if o.Dst, err = transfer.ParseFileSpec(args[1]); err != nil {
		return err
	}
	if o.MaxBytes != "" {
		if o.maxBytes, err = sandbox.ParseQuantity("--max-bytes", o.MaxBytes); err != nil {
			return err
		}
	}
	if err := o.Clients.Complete(f); err != nil {
		return err
	}
	o.Resume.Notice = o.ErrOut
	for _, s := range []*transfer.FileSpec{&o.Src, &o.Dst} {
		if s.Remote() && s.Namespace == "" {
			s.Namespace = o.Namespace
		}
	}
	return nil
}

// Validate checks that exactly one side is in a sandbox.
func (o *CpOptions) Validate() error {
	switch {
	case o.Src.Remote() && o.Dst.Remote():
		return fmt.Errorf("both sides are in a sandbox; copy through this machine instead")
	case !o.Src.Remote() && !o.Dst.Remote():
		return fmt.Errorf("neither side is in a sandbox; write one as NAME:PATH, e.g. demo:/workspace/")
	case o.MaxFiles < 0:
		return fmt.Errorf("--max-files must not be negative")
	}
	return nil
}

// Run copies.
func (o *CpOptions) Run(ctx context.Context) error {
	remote := o.Src
	if o.Dst.Remote() {
		remote = o.Dst
	}
	pod, err := o.RunningSandbox(ctx, remote.Namespace, remote.Sandbox)
	if err != nil {
		return err
	}
	// Bytes and rate on a terminal, for copies that take a while.
	prog := cli.NewProgress(o.ErrOut, false)
	r, meter := prog.Copy(fmt.Sprintf("copying %s → %s", o.Src.Path, o.Dst.Path), o.ExecIn(pod))
	if o.Dst.Remote() {
		err = transfer.CopyToSandbox(ctx, r, o.Src.Path, o.Dst.Path, prog.Warn())
	} else {
		err = transfer.CopyFromSandbox(ctx, r, o.Src.Path, o.Dst.Path, o.limits(pod), prog.Warn())
	}
	meter.Done()
	if err != nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	// Errors may quote names the sandbox chose: printed to a terminal, they
	// go through the sanitiser the MCP server uses.
	if err := o.ExplainStream(err, remote.Namespace); err != nil {
		return untrusted.Error(err)
	}
	return nil
}

// limits are the sandbox's defaults, overridden by --max-bytes/--max-files.
func (o *CpOptions) limits(pod *corev1.Pod) transfer.Limits {
	l := transfer.DefaultLimits(pod)
	if o.maxBytes.Sign() > 0 {
		l.MaxBytes = o.maxBytes.Value()
	}
	if o.MaxFiles > 0 {
		l.MaxFiles = o.MaxFiles
	}
	return l
}
