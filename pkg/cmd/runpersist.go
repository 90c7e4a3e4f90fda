package cmd

import (
	"context"
	"errors"
	"fmt"

	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// run --persist works in a persistent sandbox: the one of that name if
// there is one (resumed if suspended), else a new one; and at the end it
// suspends the sandbox instead of deleting it, so the agent's work is kept
// for the next run, for cp, or for a shell.

// createOrResume is the sandbox run --persist works in.
func (o *RunOptions) createOrResume(ctx context.Context, create sandbox.CreateOptions) (*sandbox.Created, error) {
	policy := cli.ResumePolicy{Timeout: o.Timeout, Notice: o.ErrOut}
	pod, _, err := sandbox.Awake(ctx, o.Clientset, o.Namespace, o.Name, false, policy.Options(o.Name, o.PrepareEgress(cmdutil.DryRunNone, o.ErrOut)))
	var notFound *sandbox.NotFoundError
	switch {
	case errors.As(err, &notFound):
		created, err := sandbox.Create(ctx, o.Clientset, &o.spec, create)
		if err != nil {
			return nil, o.Explain(err, o.Namespace)
		}
		cli.WarnAdmission(o.ErrOut, created)
		return created, nil
	case err != nil:
		return nil, o.Explain(err, o.Namespace)
	case !sandbox.IsPersistent(pod):
		return nil, o.Explain(&sandbox.AlreadyExistsError{Name: o.Name, Namespace: o.Namespace}, o.Namespace)
	}
	fmt.Fprintf(o.ErrOut, "using sandbox/%s and its workspace\n", o.Name)
	return &sandbox.Created{Pod: pod}, nil
}

// suspendAtEnd suspends the sandbox once run is done with it, on the
// cleanup context (Ctrl-C stops the work, not the suspend).
func (o *RunOptions) suspendAtEnd(ctx context.Context, prog *cli.Progress, result error) error {
	label := "sandbox/" + o.Name
	cctx, cancel := sandbox.CleanupContext(ctx)
	defer cancel()
	prog.Status("suspending " + label)
	_, err := sandbox.Suspend(cctx, o.Clientset, o.Namespace, o.Name, sandbox.SuspendOptions{Flush: o.FlushWorkspace(o.ErrOut), Timeout: o.DeleteTimeout})
	prog.Done()
	if err != nil {
		return withLaterFailure(ctx, result, o.Explain(err, o.Namespace))
	}
	prog.Linef("%s suspended, its work kept: resume it with any command on it (kubectl agentkernel shell %s -n %s), or delete it with: kubectl agentkernel delete %s -n %s", label, o.Name, o.Namespace, o.Name, o.Namespace)
	if result == nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return result
}
