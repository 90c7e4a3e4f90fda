package cmd

import (
	"context"
	"fmt"
	"os"
	"strings"

	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
)

// create --from starts a new persistent sandbox with the work of another:
// a workspace archive (snapshot --to FILE), or a sandbox of the namespace
// (a fork: its /workspace and $HOME streamed across, through the same
// checks as cp). The new sandbox's shape is the flags', as for any create;
// only the files come from the source.

// fromFile: --from names a file (it exists, or has a path in it), not a
// sandbox.
func fromFile(from string) bool {
	if _, err := os.Stat(from); err == nil {
		return true
	}
	return strings.ContainsAny(from, `/\.`)
}

// validateFrom checks --from before anything is made.
func (o *CreateOptions) validateFrom() error {
	switch {
	case o.From == "":
		return nil
	case o.Claim.Pool != "":
		return fmt.Errorf("--from cannot be used with --pool: a warm sandbox has no workspace to fill")
	case !o.Wait:
		return fmt.Errorf("--from needs --wait: the files go in once the sandbox runs")
	case fromFile(o.From):
		if _, err := os.Stat(o.From); err != nil {
			return fmt.Errorf("--from %s: %v", o.From, err)
		}
		return nil
	case o.From == o.Name:
		return fmt.Errorf("--from %s names the sandbox being created", o.From)
	}
	return sandbox.ValidateName(o.From)
}

// fill puts the source's work into the new sandbox, which is deleted
// again if that fails: a fork is whole or not there.
func (o *CreateOptions) fill(ctx context.Context, created *sandbox.Created, prog *cli.Progress) error {
	if o.From == "" || created.Pod == nil || o.DryRun != cmdutil.DryRunNone {
		return nil
	}
	err := o.fillFrom(ctx, created, prog)
	if err == nil {
		return nil
	}
	if _, derr := created.Delete(ctx, o.Clientset, 0); derr != nil {
		err = field.Also(err, derr)
	}
	return err
}

func (o *CreateOptions) fillFrom(ctx context.Context, created *sandbox.Created, prog *cli.Progress) error {
	limits := workspaceLimits(ctx, &o.Clients, created.Pod)
	to := o.ExecIn(created.Pod)
	if fromFile(o.From) {
		f, err := os.Open(o.From)
		if err != nil {
			return err
		}
		defer f.Close()
		prog.Linef("restoring %s into sandbox/%s", o.From, o.Name)
		if err := transfer.RestoreWorkspace(ctx, to, f, limits, prog.Warn()); err != nil {
			return fmt.Errorf("restoring %s: %w", o.From, err)
		}
		return nil
	}
	source, err := o.RunningSandbox(ctx, o.Namespace, o.From)
	if err != nil {
		return err
	}
	prog.Linef("copying the work of sandbox/%s into sandbox/%s", o.From, o.Name)
	if err := transfer.CopyWorkspace(ctx, o.ExecIn(source), to, limits, prog.Warn()); err != nil {
		return o.ExplainStream(fmt.Errorf("forking sandbox/%s: %w", o.From, err), o.Namespace)
	}
	return nil
}
