package mcp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/procs"
)

// maxProcessInput bounds one send_process_input: more goes in pieces.
const maxProcessInput = 1 << 20

// ProcessInputInput is what to write to a process's stdin.
type ProcessInputInput struct {
	Sandbox    string `json:"sandbox" jsonschema:"name of the sandbox"`
	PID        int    `json:"pid,omitempty" jsonschema:"the process's pid, as start_process returned it"`
	Tag        string `json:"tag,omitempty" jsonschema:"the tag given to start_process, instead of pid (the running process of that tag wins)"`
	Data       string `json:"data,omitempty" jsonschema:"what to write (at most 1 MiB a call; add a newline where the process reads lines)"`
	Encoding   string `json:"encoding,omitempty" jsonschema:"text (default) or base64 (data is base64 of the bytes)"`
	CloseStdin bool   `json:"close_stdin,omitempty" jsonschema:"close the process's stdin after writing data: it reads end of file"`
}

// ProcessInputOutput confirms a write.
type ProcessInputOutput struct {
	Bytes       int  `json:"bytes" jsonschema:"bytes written"`
	StdinClosed bool `json:"stdin_closed"`
}

func (s *Server) processInput(ctx context.Context, in ProcessInputInput) (ProcessInputOutput, error) {
	sel, err := selector(in.PID, in.Tag)
	if err != nil {
		return ProcessInputOutput{}, err
	}
	data, err := decode(in.Data, in.Encoding)
	switch {
	case err != nil:
		return ProcessInputOutput{}, fmt.Errorf("data: %v", err)
	case len(data) > maxProcessInput:
		return ProcessInputOutput{}, fmt.Errorf("data is %d bytes, more than the %d one call sends: send it in pieces", len(data), maxProcessInput)
	case len(data) == 0 && !in.CloseStdin:
		return ProcessInputOutput{}, errors.New("nothing to do: give data to write, close_stdin, or both")
	}
	t, resumed, err := s.ready(ctx, in.Sandbox, true)
	if err != nil {
		return ProcessInputOutput{}, err
	}
	p := newProcs(t.run)
	if len(data) > 0 {
		if err := p.SendInput(ctx, sel, data); err != nil {
			return ProcessInputOutput{}, s.processError(ctx, t, resumed, sel, err)
		}
	}
	if in.CloseStdin {
		if err := p.CloseStdin(ctx, sel); err != nil {
			return ProcessInputOutput{Bytes: len(data)}, s.processError(ctx, t, resumed, sel, err)
		}
	}
	return ProcessInputOutput{Bytes: len(data), StdinClosed: in.CloseStdin}, nil
}

// KillProcessInput is the signal to send to a process.
type KillProcessInput struct {
	Sandbox     string `json:"sandbox" jsonschema:"name of the sandbox"`
	PID         int    `json:"pid,omitempty" jsonschema:"the process's pid, as start_process returned it"`
	Tag         string `json:"tag,omitempty" jsonschema:"the tag given to start_process, instead of pid (the running process of that tag wins)"`
	Signal      string `json:"signal,omitempty" jsonschema:"TERM (default: asks it to end), KILL (ends it at once), INT or HUP"`
	WaitSeconds int    `json:"wait_seconds,omitempty" jsonschema:"wait up to this many seconds for it to end (default 5)"`
}

// KillProcessOutput is how the process is after the signal.
type KillProcessOutput struct {
	PID    int    `json:"pid"`
	Signal string `json:"signal"`
	Sent   bool   `json:"sent" jsonschema:"false: it had ended already, and nothing was sent"`
	State  string `json:"state" jsonschema:"running (it has not ended yet: wait, or send KILL), exited or lost"`
	Exit   *Exit  `json:"exit,omitempty"`
}

// killWait is how long kill_process waits by default for the end.
const killWait = 5 * time.Second

func (s *Server) killProcess(ctx context.Context, in KillProcessInput) (KillProcessOutput, error) {
	sel, err := selector(in.PID, in.Tag)
	if err != nil {
		return KillProcessOutput{}, err
	}
	name := in.Signal
	if name == "" {
		name = "TERM"
	}
	sig, ok := signalByName[name]
	if !ok {
		return KillProcessOutput{}, fmt.Errorf("unknown signal %q: use %s", in.Signal, strings.Join(signalNames(), ", "))
	}
	wait := killWait
	if in.WaitSeconds < 0 || time.Duration(in.WaitSeconds)*time.Second > s.o.Limits.ExecTimeout {
		return KillProcessOutput{}, fmt.Errorf("wait_seconds must be between 0 and %d (the server's exec timeout)", int(s.o.Limits.ExecTimeout.Seconds()))
	} else if in.WaitSeconds > 0 {
		wait = time.Duration(in.WaitSeconds) * time.Second
	}
	t, resumed, err := s.ready(ctx, in.Sandbox, true)
	if err != nil {
		return KillProcessOutput{}, err
	}
	p := newProcs(t.run)
	// By its pid from here on: the tag may name another process once
	// this one has ended.
	found, err := p.Find(ctx, sel)
	if err != nil {
		return KillProcessOutput{}, s.processError(ctx, t, resumed, sel, err)
	}
	out := KillProcessOutput{PID: found.PID, Signal: name}
	sel = procs.Selector{PID: found.PID}
	if found.State == procs.Running {
		switch err := p.Signal(ctx, sel, sig); {
		case errors.Is(err, procs.ErrEnded):
		case err != nil:
			return KillProcessOutput{}, s.processError(ctx, t, resumed, sel, err)
		default:
			out.Sent = true
			s.log.Info("signalled a background process", "sandbox", t.name, "pid", found.PID, "signal", name)
		}
		if found, err = s.awaitEnd(ctx, t, p, sel, wait); err != nil {
			return KillProcessOutput{}, s.processError(ctx, t, resumed, sel, err)
		}
	}
	out.State, out.Exit = found.State.String(), exitOf(found.State, found.Exit)
	return out, nil
}

// awaitEnd polls a process until it has ended or wait is over, and
// returns it as last seen. Each poll is a new stream to the Pod by name:
// confirmed, as every stream is.
func (s *Server) awaitEnd(ctx context.Context, t target, p *procs.Procs, sel procs.Selector, wait time.Duration) (*procs.Process, error) {
	deadline := time.Now().Add(wait)
	for {
		if err := s.scope.confirm(ctx, t); err != nil {
			return nil, err
		}
		found, err := p.Find(ctx, sel)
		if err != nil || found.State != procs.Running || !time.Now().Before(deadline) {
			return found, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// The signals kill_process sends, by name.
var signalByName = map[string]procs.Signal{"TERM": procs.SIGTERM, "KILL": procs.SIGKILL, "INT": procs.SIGINT, "HUP": procs.SIGHUP}

func signalNames() []string { return []string{"TERM", "KILL", "INT", "HUP"} }

// signalName is the name of signal n, as kill_process takes it.
func signalName(n int) string {
	for name, s := range signalByName {
		if int(s) == n {
			return name
		}
	}
	return fmt.Sprintf("%d", n)
}
