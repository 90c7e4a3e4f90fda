// Package envd answers E2B's in-sandbox API (envd: /health, /files and the
// Connect-RPC Process and Filesystem services of third_party/e2b/spec/envd)
// for sandboxes that run no envd: every call becomes a pods/exec of what
// every image has (sh and coreutils), so nothing is installed in the cluster
// or injected into the sandbox.
//
// The server in front of it (package e2b) has already authenticated the
// request and found its sandbox by the E2b-Sandbox-Id header; the handlers
// here reach that sandbox through the request's context (WithSandbox), so
// one Handler serves every sandbox.
package envd

import (
	"context"
	"net/http"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb/filesystempbconnect"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb/processpbconnect"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Sandbox is the sandbox one request is about.
type Sandbox struct {
	ID        string // the sandbox's name, E2B's sandboxID
	Namespace string
	// Exec runs commands in the sandbox container (NewPodExec: with the
	// environment a pool claim brought).
	Exec *sandbox.PodExec
}

type sandboxKey struct{}

// WithSandbox returns ctx carrying the request's sandbox.
func WithSandbox(ctx context.Context, sb *Sandbox) context.Context {
	return context.WithValue(ctx, sandboxKey{}, sb)
}

// SandboxFrom returns the request's sandbox, which the server in front put there.
func SandboxFrom(ctx context.Context) (*Sandbox, bool) {
	sb, ok := ctx.Value(sandboxKey{}).(*Sandbox)
	return sb, ok && sb != nil
}

// Handler serves envd's routes for every sandbox of one serve process.
type Handler struct {
	mux *http.ServeMux
	// processes outlive requests: they are kept in the sandbox (package
	// procs); a PTY lives in a TTY exec this process holds until the PTY
	// ends (process_pty.go).
	processes *processService
	files     *filesystemService
}

// NewHandler returns envd's routes.
func NewHandler() *Handler {
	h := &Handler{mux: http.NewServeMux(), processes: newProcessService(), files: newFilesystemService()}
	h.mux.Handle(processpbconnect.NewProcessHandler(h.processes))
	h.mux.Handle(filesystempbconnect.NewFilesystemHandler(h.files))
	h.mux.HandleFunc("GET /health", health)
	h.mux.HandleFunc("GET /files", h.files.download)
	h.mux.HandleFunc("POST /files", h.files.upload)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// health is envd's liveness route: 204 once the sandbox answers. The
// server in front only routes here for a sandbox it found running.
func health(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }
