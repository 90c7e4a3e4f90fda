package mcp

import (
	"context"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// shellMaxIdle is how long a warm shell may sit unused before the next
// exec starts a fresh one: a connection that died without a word (a proxy
// dropping idle streams) must not swallow a command.
const shellMaxIdle = 30 * time.Second

// shell returns the warm shell of a sandbox, starting one if there is
// none, or nil when exec should stream on its own: the shell is starting
// for another call, or this sandbox cannot run one. A command through a
// warm shell costs no new stream, so an agent's many short commands do not
// each pay the API server's and the kubelet's setup of an exec.
func (s *Server) shell(ctx context.Context, t target) *sandbox.Shell {
	sc := s.scope
	sc.mu.Lock()
	e := sc.byUID[t.pod.UID]
	if e == nil || e.removed || e.suspended || e.noShell || e.shellStarting {
		sc.mu.Unlock()
		return nil
	}
	if e.shell != nil {
		if alive, idle := e.shell.Alive(); alive && idle < shellMaxIdle {
			sh := e.shell
			sc.mu.Unlock()
			return sh
		}
		e.shell.Close()
		e.shell = nil
	}
	e.shellStarting = true
	sc.mu.Unlock()

	// The shell's stream, like any, reaches the Pod by name. When the Pod
	// is not the sandbox's any more, the caller's own confirm says why.
	if sc.confirm(ctx, t) != nil {
		sc.mu.Lock()
		e.shellStarting = false
		sc.mu.Unlock()
		return nil
	}
	sh, err := sandbox.StartShell(ctx, s.stopping, t.run)

	sc.mu.Lock()
	defer sc.mu.Unlock()
	e.shellStarting = false
	switch {
	case err != nil && ctx.Err() == nil:
		e.noShell = true
		s.log.Debug("exec streams on its own in this sandbox", "sandbox", t.name, "error", err)
		return nil
	case err != nil:
		return nil
	case e.removed || sc.closed || e.suspended || e.pod == nil || e.pod.UID != t.pod.UID:
		// Gone, or suspended (and perhaps resumed in another Pod) meanwhile.
		sh.Close()
		return nil
	}
	e.shell = sh
	return sh
}
