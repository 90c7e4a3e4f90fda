package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
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
	Src, Dst sandbox.FileSpec

	clients
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
			otherwise SRC is copied to the name DST. Files coming out of a sandbox are
			checked: absolute names, '..', links leading out of the copied directory and
			device files are refused or skipped. An image without tar can still copy a
			single file.`),
		Example:           cpExample,
		ValidArgsFunction: completeSandboxNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	return cmd
}

// Complete parses the two file specs and builds clients.
func (o *CpOptions) Complete(f cmdutil.Factory, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("cp takes a source and a destination, one of them NAME:PATH (got %d arguments)", len(args))
	}
	var err error
	if o.Src, err = sandbox.ParseFileSpec(args[0]); err != nil {
		return err
	}
	if o.Dst, err = sandbox.ParseFileSpec(args[1]); err != nil {
		return err
	}
	if err := o.complete(f); err != nil {
		return err
	}
	for _, s := range []*sandbox.FileSpec{&o.Src, &o.Dst} {
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
	}
	return nil
}

// Run copies.
func (o *CpOptions) Run(ctx context.Context) error {
	remote := o.Src
	if o.Dst.Remote() {
		remote = o.Dst
	}
	pod, err := o.runningSandbox(ctx, remote.Namespace, remote.Sandbox)
	if err != nil {
		return err
	}
	r := &podRunner{clients: &o.clients, namespace: remote.Namespace, pod: pod.Name}
	if o.Dst.Remote() {
		err = sandbox.CopyToSandbox(ctx, r, o.Src.Path, o.Dst.Path, o.ErrOut)
	} else {
		err = sandbox.CopyFromSandbox(ctx, r, o.Src.Path, o.Dst.Path, o.ErrOut)
	}
	return o.explain(err, remote.Namespace)
}
