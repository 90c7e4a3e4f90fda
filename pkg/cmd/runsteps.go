package cmd

// The steps run takes in its sandbox around the command: the agent's
// install step, --copy-in, starting the held main process, --copy-out.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// copySpec is one --copy-in or --copy-out.
type copySpec struct {
	local, remote string
}

// parseCopyIn reads LOCAL[:SANDBOX_PATH]; the local side must exist now,
// before anything is created.
func parseCopyIn(s string) (copySpec, error) {
	local, remote := splitCopy(s)
	if local == "" {
		return copySpec{}, fmt.Errorf("--copy-in %q: the local path is empty (LOCAL[:SANDBOX_PATH])", s)
	}
	if _, err := os.Stat(local); err != nil {
		return copySpec{}, fmt.Errorf("--copy-in %q: %v", s, errors.Unwrap(err))
	}
	if remote == "" {
		remote = sandbox.WorkspaceDir + "/"
	}
	p, err := transfer.CleanRemotePath(remote)
	if err != nil {
		return copySpec{}, fmt.Errorf("--copy-in %q: %v", s, err)
	}
	return copySpec{local: local, remote: p}, nil
}

// parseCopyOut reads SANDBOX_PATH[:LOCAL].
func parseCopyOut(s string) (copySpec, error) {
	remote, local := splitCopy(s)
	if remote == "" {
		return copySpec{}, fmt.Errorf("--copy-out %q: the sandbox path is empty (SANDBOX_PATH[:LOCAL])", s)
	}
	p, err := transfer.CleanRemotePath(remote)
	if err != nil {
		return copySpec{}, fmt.Errorf("--copy-out %q: %v", s, err)
	}
	if local == "" {
		local = "."
	}
	return copySpec{local: local, remote: p}, nil
}

// splitCopy cuts at the first ':' (a Windows drive letter is not one).
func splitCopy(s string) (first, second string) {
	skip := 0
	if runtime.GOOS == "windows" && len(s) >= 2 && s[1] == ':' {
		skip = 2
	}
	if i := strings.IndexByte(s[skip:], ':'); i >= 0 {
		return s[:skip+i], s[skip+i+1:]
	}
	return s, ""
}

// prepare installs the preset's agent and copies the inputs in.
func (o *RunOptions) prepare(ctx context.Context, pod *corev1.Pod, prog *cli.Progress) error {
	if err := installAgent(ctx, &o.Clients, pod, o.Sandbox.Preset, prog); err != nil {
		return err
	}
	for _, c := range o.copyIns {
		prog.Linef("copying %s into %s", c.local, c.remote)
		r, meter := prog.Copy("copying "+c.local+" → "+c.remote, o.ExecIn(pod))
		err := transfer.CopyToSandbox(ctx, r, c.local, c.remote, prog.Warn())
		meter.Done()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("--copy-in %s:%s: %w", c.local, c.remote, o.ExplainStream(err, o.Namespace))
		}
	}
	return nil
}

func (o *RunOptions) copyOut(ctx context.Context, pod *corev1.Pod, c copySpec, prog *cli.Progress) error {
	prog.Linef("copying %s out to %s", c.remote, c.local)
	r, meter := prog.Copy("copying "+c.remote+" → "+c.local, o.ExecIn(pod))
	limits := (&CpOptions{MaxFiles: o.MaxFiles, maxBytes: o.maxBytes}).limits(pod)
	err := transfer.CopyFromSandbox(ctx, r, c.remote, c.local, limits, prog.Warn())
	meter.Done()
	if err != nil {
		return fmt.Errorf("--copy-out %s:%s: %w", c.remote, c.local, o.ExplainStream(err, o.Namespace))
	}
	return nil
}

// installAgent runs the preset's install step, if it has one and the
// sandbox did not run it when it warmed up (a pool member made for the
// agent, claimed).
func installAgent(ctx context.Context, c *cli.Clients, pod *corev1.Pod, p *agents.Preset, prog *cli.Progress) error {
	if p == nil || p.InImage() {
		return nil
	}
	if warmInstalled(pod, p) {
		prog.Linef("%s was installed in sandbox/%s while it warmed up", p.Name, sandbox.NameOf(pod))
		return nil
	}
	prog.Linef("installing %s in sandbox/%s", p.Name, sandbox.NameOf(pod))
	prog.Status("installing " + p.Name + ": " + p.Install)
	err := sandbox.RunSetup(ctx, c.ExecIn(pod), p.Install)
	prog.Done()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return fmt.Errorf("installing %s in sandbox/%s failed (%v); the install step of the preset (%s) usually needs egress to a package registry: check --profile/--network, or use an image that has the agent (--image)",
		p.Name, sandbox.NameOf(pod), c.ExplainStream(err, pod.Namespace), p.Source)
}

// startMain starts a main process held until now (Spec.HoldCommand).
func startMain(ctx context.Context, r sandbox.Runner) error {
	var stderr strings.Builder
	if err := r.Run(ctx, sandbox.StartCommand, nil, nil, &stderr); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("starting the sandbox's main process failed: %v %s", err, untrusted.Printable(strings.TrimSpace(stderr.String())))
	}
	return nil
}

// warmInstalled says whether the sandbox's PID 1 ran p's install step, as
// it is now, before the sandbox became ready: a pool made for the agent
// installs while its members warm up. A preset whose install step changed
// since the pool was made installs again, over exec.
func warmInstalled(pod *corev1.Pod, p *agents.Preset) bool {
	script, ok := sandbox.WarmInstalled(pod)
	return ok && script == p.Install
}
