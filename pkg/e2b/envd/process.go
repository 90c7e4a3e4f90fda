package envd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb/processpbconnect"
	"github.com/agentkernel/kubectl-agentkernel/pkg/procs"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// processService answers process.Process on package procs: a process
// lives in the sandbox, not in this server, so it outlives every request
// (and serve itself) and any request may reach it by PID or tag. PTY
// processes are the exception (process_pty.go).
type processService struct {
	processpbconnect.UnimplementedProcessHandler
	ptys *ptyTable
}

func newProcessService() *processService { return &processService{ptys: newPTYTable()} }

// procsOf returns the processes of the request's sandbox.
func procsOf(ctx context.Context) (*procs.Procs, *Sandbox, error) {
	sb, ok := SandboxFrom(ctx)
	if !ok || sb.Exec == nil {
		return nil, nil, connect.NewError(connect.CodeInternal, errors.New("the request reached envd without its sandbox"))
	}
	return procs.New(sb.Exec), sb, nil
}

// checkUser answers the user a request runs as (HTTP Basic, "NAME:", as
// the SDK sends it for `user`). The sandbox runs every process as its one
// non-root user: "root" is refused, so that code expecting root powers
// fails at once and clearly rather than later with EPERM; any other name
// (the SDK's default "user" among them) runs as the sandbox's user.
func checkUser(h http.Header) error {
	auth, ok := strings.CutPrefix(h.Get("Authorization"), "Basic ")
	if !ok {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth))
	if err != nil {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("the Authorization header is not HTTP Basic of a user name"))
	}
	if user, _, _ := strings.Cut(string(raw), ":"); user == "root" {
		return connect.NewError(connect.CodePermissionDenied, errors.New("this sandbox runs processes as its non-root user only, so `user: 'root'` cannot be honoured; run the command without `user` (as the sandbox's user)"))
	}
	return nil
}

// target is the processes of the request's sandbox and the one the
// request names.
func target(ctx context.Context, s *processpb.ProcessSelector) (*procs.Procs, *Sandbox, procs.Selector, error) {
	p, sb, err := procsOf(ctx)
	if err != nil {
		return nil, nil, procs.Selector{}, err
	}
	sel, err := selectorOf(s)
	return p, sb, sel, err
}

// selectorOf reads a ProcessSelector.
func selectorOf(s *processpb.ProcessSelector) (procs.Selector, error) {
	switch {
	case s == nil:
	case s.GetPid() > 0:
		if s.GetPid() > 1<<31-1 {
			return procs.Selector{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("pid %d is not a process id", s.GetPid()))
		}
		return procs.Selector{PID: int(s.GetPid())}, nil
	case s.GetTag() != "":
		return procs.Selector{Tag: s.GetTag()}, nil
	}
	return procs.Selector{}, connect.NewError(connect.CodeInvalidArgument, errors.New("the request names no process: give its pid or tag"))
}

// rpcError turns an error of package procs into the connect code the SDK
// maps to its own errors (NotFound: NotFoundError, and `kill` answers false).
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	var fe field.Error
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, context.DeadlineExceeded): // the client's timeoutMs: the process runs on
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, procs.ErrNotFound), errors.Is(err, procs.ErrEnded):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, procs.ErrStdinClosed):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, procs.ErrTooMany):
		return connect.NewError(connect.CodeResourceExhausted, err)
	case errors.As(err, &fe):
		return connect.NewError(connect.CodeInvalidArgument, errors.New(untrusted.Line(fe.Words(func(f string) string { return f }), 500)))
	}
	return connect.NewError(connect.CodeUnavailable, errors.New(untrusted.Line(err.Error(), 500)))
}

// List answers the running processes, as envd does (finished ones are
// kept by procs for other callers, but envd forgets them).
func (s *processService) List(ctx context.Context, _ *connect.Request[processpb.ListRequest]) (*connect.Response[processpb.ListResponse], error) {
	p, sb, err := procsOf(ctx)
	if err != nil {
		return nil, err
	}
	all, err := p.List(ctx)
	if err != nil {
		return nil, rpcError(err)
	}
	res := &processpb.ListResponse{}
	for _, q := range all {
		if q.State != procs.Running {
			continue
		}
		res.Processes = append(res.Processes, processInfo(q.PID, q.Spec))
	}
	for _, t := range s.ptys.of(sb) {
		res.Processes = append(res.Processes, processInfo(t.pid, t.spec))
	}
	return connect.NewResponse(res), nil
}

func processInfo(pid int, spec procs.Spec) *processpb.ProcessInfo {
	info := &processpb.ProcessInfo{Pid: uint32(pid), Config: &processpb.ProcessConfig{Cmd: spec.Cmd, Args: spec.Args, Envs: spec.Env}}
	if spec.Cwd != "" {
		info.Config.Cwd = &spec.Cwd
	}
	if spec.Tag != "" {
		info.Tag = &spec.Tag
	}
	return info
}

// SendSignal: SIGTERM or SIGKILL to the process and everything it started.
func (s *processService) SendSignal(ctx context.Context, req *connect.Request[processpb.SendSignalRequest]) (*connect.Response[processpb.SendSignalResponse], error) {
	p, sb, sel, err := target(ctx, req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	var sig procs.Signal
	switch req.Msg.GetSignal() {
	case processpb.Signal_SIGNAL_SIGTERM:
		sig = procs.SIGTERM
	case processpb.Signal_SIGNAL_SIGKILL:
		sig = procs.SIGKILL
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("signal %d is not SIGTERM or SIGKILL", req.Msg.GetSignal()))
	}
	if t := s.ptys.find(sb, sel); t != nil {
		return connect.NewResponse(&processpb.SendSignalResponse{}), rpcError(t.signal(ctx, p, sig))
	}
	return connect.NewResponse(&processpb.SendSignalResponse{}), rpcError(p.Signal(ctx, sel, sig))
}

// SendInput writes to the process's stdin (or its terminal).
func (s *processService) SendInput(ctx context.Context, req *connect.Request[processpb.SendInputRequest]) (*connect.Response[processpb.SendInputResponse], error) {
	p, sb, sel, err := target(ctx, req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&processpb.SendInputResponse{}), s.input(ctx, p, sb, sel, req.Msg.GetInput())
}

func (s *processService) input(ctx context.Context, p *procs.Procs, sb *Sandbox, sel procs.Selector, in *processpb.ProcessInput) error {
	if in == nil || in.GetInput() == nil {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("the input holds neither stdin nor pty bytes"))
	}
	t := s.ptys.find(sb, sel)
	if _, isPTY := in.GetInput().(*processpb.ProcessInput_Pty); isPTY {
		if t == nil {
			if _, err := p.Find(ctx, sel); err != nil {
				return rpcError(err)
			}
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s has no terminal: send stdin", sel))
		}
		return rpcError(t.write(in.GetPty()))
	}
	if t != nil {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s runs in a terminal: send pty input", sel))
	}
	return rpcError(p.SendInput(ctx, sel, in.GetStdin()))
}

// StreamInput: a start naming the process, then inputs, each written as
// it arrives.
func (s *processService) StreamInput(ctx context.Context, stream *connect.ClientStream[processpb.StreamInputRequest]) (*connect.Response[processpb.StreamInputResponse], error) {
	p, sb, err := procsOf(ctx)
	if err != nil {
		return nil, err
	}
	var sel *procs.Selector
	for stream.Receive() {
		switch e := stream.Msg().GetEvent().(type) {
		case *processpb.StreamInputRequest_Start:
			if sel != nil {
				return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the input stream named its process twice"))
			}
			got, err := selectorOf(e.Start.GetProcess())
			if err != nil {
				return nil, err
			}
			sel = &got
		case *processpb.StreamInputRequest_Data:
			if sel == nil {
				return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the input stream sent data before naming its process"))
			}
			if err := s.input(ctx, p, sb, *sel, e.Data.GetInput()); err != nil {
				return nil, err
			}
		case *processpb.StreamInputRequest_Keepalive:
		default:
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the input stream sent an empty event"))
		}
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	return connect.NewResponse(&processpb.StreamInputResponse{}), nil
}

// CloseStdin: the process reads EOF once what was sent is read.
func (s *processService) CloseStdin(ctx context.Context, req *connect.Request[processpb.CloseStdinRequest]) (*connect.Response[processpb.CloseStdinResponse], error) {
	p, sb, sel, err := target(ctx, req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if t := s.ptys.find(sb, sel); t != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s runs in a terminal, which has no stdin to close: send it Ctrl-D as pty input", sel))
	}
	return connect.NewResponse(&processpb.CloseStdinResponse{}), rpcError(p.CloseStdin(ctx, sel))
}

// Update resizes a PTY process's terminal; a process without one has
// nothing to update.
func (s *processService) Update(ctx context.Context, req *connect.Request[processpb.UpdateRequest]) (*connect.Response[processpb.UpdateResponse], error) {
	p, sb, sel, err := target(ctx, req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	t := s.ptys.find(sb, sel)
	if t == nil {
		if _, err := p.Find(ctx, sel); err != nil {
			return nil, rpcError(err)
		}
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s has no terminal to resize", sel))
	}
	if size := req.Msg.GetPty().GetSize(); size != nil {
		t.resize(size.GetCols(), size.GetRows())
	}
	return connect.NewResponse(&processpb.UpdateResponse{}), nil
}
