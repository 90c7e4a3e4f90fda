package mcp

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// Tool names. They are the API agents learn: keep them stable.
const (
	toolCreate    = "create_sandbox"
	toolExec      = "exec"
	toolWriteFile = "write_file"
	toolReadFile  = "read_file"
	toolListDir   = "list_directory"
	toolCopyIn    = "copy_in"
	toolCopyOut   = "copy_out"
	toolList      = "list_sandboxes"
	toolDelete    = "delete_sandbox"
	toolSuspend   = "suspend_sandbox"
	toolResume    = "resume_sandbox"
)

// hints are the annotations of a tool, set honestly: clients use them to
// decide what to ask the user before a call.
type hints struct {
	readOnly, destructive, idempotent, openWorld bool
}

func (h hints) annotations(title string) *sdk.ToolAnnotations {
	a := &sdk.ToolAnnotations{Title: title, ReadOnlyHint: h.readOnly, OpenWorldHint: ptr.To(h.openWorld)}
	if !h.readOnly {
		a.DestructiveHint = ptr.To(h.destructive)
		a.IdempotentHint = h.idempotent
	} else {
		a.IdempotentHint = true
	}
	return a
}

func (s *Server) addTools() {
	addTool(s, toolCreate, "Create a sandbox", hints{},
		"Create a sandbox: a hardened, disposable Kubernetes Pod to run code in (non-root, no capabilities, "+
			"size-limited writable /workspace, /tmp and home). Waits until it can run commands. "+
			"Leave name out to get a generated one. The server's settings are the defaults and the most you can ask for.",
		enums{"profile": profileNames(), "network": networkNames()},
		s.create)
	addTool(s, toolExec, "Run a command in a sandbox", hints{destructive: true, openWorld: true},
		"Run a command in a sandbox and return its exit code, stdout and stderr (each bounded; "+
			"*_truncated says when output was cut). Give command (an argv, no shell) or shell (a sh -c command line). "+
			"A non-zero exit code is a result, not an error.",
		nil, s.exec)
	addTool(s, toolWriteFile, "Write a file in a sandbox", hints{destructive: true},
		"Write a file in a sandbox, creating its parent directories; replaces the file unless append is set.",
		enums{"encoding": encodings()}, s.writeFile)
	addTool(s, toolReadFile, "Read a file in a sandbox", hints{readOnly: true},
		"Read a file in a sandbox: text (control characters replaced) or base64 for exact bytes; bounded, with offset for the rest.",
		enums{"encoding": encodings()}, s.readFile)
	addTool(s, toolListDir, "List a directory in a sandbox", hints{readOnly: true},
		"List a directory in a sandbox: name, type and size of each entry.",
		nil, s.listDir)
	if s.root != nil {
		addTool(s, toolCopyIn, "Copy local files into a sandbox", hints{destructive: true, idempotent: true},
			"Copy a local file or directory (under "+s.root.dir+"; relative paths start there) into a sandbox. "+
				"Paths that lead outside that directory, through symlinks too, are refused.",
			nil, s.copyIn)
		addTool(s, toolCopyOut, "Copy files out of a sandbox", hints{destructive: true, idempotent: true},
			"Copy a file or directory out of a sandbox to a local path under "+s.root.dir+" (relative paths start there). "+
				"Unsafe entries (absolute names, '..', links out of the tree, devices) are skipped or refused.",
			nil, s.copyOut)
	}
	s.addProcessTools() // procs.go
	if s.o.Persist.MaxSize.Sign() > 0 || len(s.o.Adopt) > 0 || s.o.AdoptSelector != "" {
		// Ends the Pod (its processes and memory), keeps the files.
		addTool(s, toolSuspend, "Suspend a persistent sandbox", hints{destructive: true, idempotent: true},
			"Suspend a persistent sandbox (one created with persist): its running processes end and its Pod goes, freeing its node; "+
				"its files in /workspace and home are kept. Any later command on it, or resume_sandbox, resumes it.",
			nil, s.suspend)
		addTool(s, toolResume, "Resume a persistent sandbox", hints{idempotent: true},
			"Resume a suspended persistent sandbox: a new Pod with the same files, image, limits and network. "+
				"Waits until it can run commands. Nothing happens to one that runs.",
			nil, s.resume)
	}
	addTool(s, toolList, "List sandboxes", hints{readOnly: true},
		"List the sandboxes this server may use: those it created in this session and those its user adopted.",
		nil, s.list)
	addTool(s, toolDelete, "Delete a sandbox", hints{destructive: true, idempotent: true},
		"Delete a sandbox and everything in it; waits until it is gone unless wait is false.",
		nil, s.delete)
}

// enums restrict string properties of a tool's input to fixed values, so
// the schema tells the agent what they are.
type enums map[string][]string

// addTool registers a typed tool whose handler sees only its input. Every
// call is admitted by the server (none start once it is stopping), runs on
// a context that ends when the server stops, cannot crash the server (a
// panic becomes a tool error), and fails as an MCP tool error whose text
// an agent can act on.
func addTool[In, Out any](s *Server, name, title string, h hints, description string, e enums, run func(context.Context, In) (Out, error)) {
	t := &sdk.Tool{Name: name, Title: title, Description: description, Annotations: h.annotations(title)}
	if len(e) > 0 {
		schema, err := jsonschema.For[In](nil)
		if err != nil {
			panic(fmt.Sprintf("tool %s: %v", name, err)) // a programming error, found by every test
		}
		for prop, values := range e {
			p := schema.Properties[prop]
			if p == nil {
				panic(fmt.Sprintf("tool %s has no property %q", name, prop))
			}
			for _, v := range values {
				p.Enum = append(p.Enum, v)
			}
		}
		t.InputSchema = schema
	}
	sdk.AddTool(s.mcp, t, func(ctx context.Context, _ *sdk.CallToolRequest, in In) (res *sdk.CallToolResult, out Out, err error) {
		ctx, done, err := s.begin(ctx)
		if err != nil {
			return nil, out, err
		}
		defer done()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("tool call panicked", "tool", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				var zero Out
				res, out, err = nil, zero, fmt.Errorf("internal error in %s; the server keeps running: %v", name, r)
			}
		}()
		out, err = run(ctx, in)
		if err != nil {
			err = s.toolError(ctx, inArgWords(err))
			s.log.Debug("tool call failed", "tool", name, "error", err)
			return nil, out, err
		}
		return nil, out, nil
	})
}

// toolError is the text an agent reads: what happened and what to do,
// printable only (errors may quote what a sandbox said).
func (s *Server) toolError(ctx context.Context, err error) error {
	var exists *sandbox.AlreadyExistsError
	switch {
	case errors.As(err, &exists):
		err = fmt.Errorf("a sandbox called %q already exists in namespace %q; pick another name, or leave the name out to get a new one", exists.Name, exists.Namespace)
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		err = errors.New("cancelled: the call was cancelled or the server is stopping")
	case apierrors.IsForbidden(err):
		err = fmt.Errorf("%v; the user running this server lacks the permission in namespace %q: ask a cluster admin for access (kubectl agentkernel rbac -n %s prints the Role it takes)", err, s.o.Namespace, s.o.Namespace)
	}
	return errors.New(untrusted.Printable(err.Error()))
}

func profileNames() []string {
	var out []string
	for _, p := range sandbox.Profiles {
		out = append(out, string(p))
	}
	return out
}

func networkNames() []string {
	var out []string
	for _, n := range sandbox.Networks {
		out = append(out, string(n))
	}
	return out
}

const (
	encodingText   = "text"
	encodingBase64 = "base64"
)

func encodings() []string { return []string{encodingText, encodingBase64} }
