package mcp

import (
	"context"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
)

// CopyInInput copies a local path into a sandbox.
type CopyInInput struct {
	Sandbox     string `json:"sandbox" jsonschema:"name of the sandbox"`
	LocalPath   string `json:"local_path" jsonschema:"local file or directory, relative to the server's root directory (or absolute inside it)"`
	SandboxPath string `json:"sandbox_path,omitempty" jsonschema:"where it goes (default /workspace/; relative paths start at /workspace). An existing directory, or a path ending in /, receives it under its own name; any other path becomes its new name"`
}

// CopyOutInput copies a sandbox path out.
type CopyOutInput struct {
	Sandbox     string `json:"sandbox" jsonschema:"name of the sandbox"`
	SandboxPath string `json:"sandbox_path" jsonschema:"file or directory in the sandbox (relative paths start at /workspace)"`
	LocalPath   string `json:"local_path" jsonschema:"where it goes, relative to the server's root directory (or absolute inside it). An existing directory, or a path ending in /, receives it under its own name; any other path becomes its new name"`
}

// CopyOutput says what was copied where.
type CopyOutput struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Warnings []string `json:"warnings,omitempty" jsonschema:"entries skipped, and why"`
	Resumed  string   `json:"resumed,omitempty" jsonschema:"the sandbox was suspended and this call resumed it first: since when and why"`
}

func (s *Server) copyIn(ctx context.Context, in CopyInInput) (CopyOutput, error) {
	local, err := s.root.source(in.LocalPath)
	if err != nil {
		return CopyOutput{}, err
	}
	remote := in.SandboxPath
	if remote == "" {
		remote = sandbox.WorkspaceDir + "/"
	}
	remote, err = transfer.CleanRemotePath(remote)
	if err != nil {
		return CopyOutput{}, err
	}
	t, rel, resumed, err := s.copyEnds(ctx, in.Sandbox, local)
	if err != nil {
		return CopyOutput{}, err
	}
	warn := capture{limit: maxWarnings}
	// Through the root's handle, never by the resolved name: the path was
	// checked above, but an entry on it can be swapped for a link to
	// anywhere before it is read.
	if err := transfer.CopyToSandboxFrom(ctx, t.run, s.root.fs, rel, remote, &warn); err != nil {
		return CopyOutput{}, s.root.explain(in.LocalPath, err)
	}
	return CopyOutput{From: s.root.relative(local), To: t.name + ":" + remote, Warnings: warnings(&warn), Resumed: resumed}, nil
}

func (s *Server) copyOut(ctx context.Context, in CopyOutInput) (CopyOutput, error) {
	remote, err := sandboxPath(in.SandboxPath)
	if err != nil {
		return CopyOutput{}, err
	}
	local, err := s.root.destination(in.LocalPath)
	if err != nil {
		return CopyOutput{}, err
	}
	t, rel, resumed, err := s.copyEnds(ctx, in.Sandbox, local)
	if err != nil {
		return CopyOutput{}, err
	}
	// Warnings quote names the sandbox chose: bounded, and made printable.
	warn := capture{limit: maxWarnings}
	// Every directory, file and link is made through the root's handle, for
	// the reason copyIn reads through it.
	if err := transfer.CopyFromSandboxIn(ctx, t.run, remote, s.root.fs, rel, transfer.DefaultLimits(t.pod), &warn); err != nil {
		return CopyOutput{}, s.root.explain(in.LocalPath, err)
	}
	return CopyOutput{From: t.name + ":" + remote, To: s.root.relative(strings.TrimSuffix(local, "/")), Warnings: warnings(&warn), Resumed: resumed}, nil
}

// copyEnds are both ends of a copy: the sandbox the agent may use, and the
// local path named relative to the root, through whose handle every file
// is read or made.
func (s *Server) copyEnds(ctx context.Context, sandboxName, local string) (target, string, string, error) {
	t, resumed, err := s.ready(ctx, sandboxName, true)
	if err != nil {
		return target{}, "", "", err
	}
	rel, err := s.root.rel(local)
	if err != nil {
		return target{}, "", "", err
	}
	return t, rel, resumed, nil
}

// maxWarnings bounds the warnings a copy keeps: they quote names the
// sandbox chose.
const maxWarnings = 16 << 10

func warnings(c *capture) []string {
	text := strings.TrimSpace(c.text())
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}
