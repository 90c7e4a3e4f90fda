package envd

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb"
	"github.com/agentkernel/kubectl-agentkernel/pkg/procs"
)

// Start starts a process and streams it as envd does: a StartEvent with its
// PID, its output as DataEvents, then an EndEvent with its exit. The
// process lives in the sandbox: a client that goes away (or whose
// timeoutMs passes) ends the stream, not the process, which Connect
// reaches again.
func (s *processService) Start(ctx context.Context, req *connect.Request[processpb.StartRequest], stream *connect.ServerStream[processpb.StartResponse]) error {
	p, sb, err := procsOf(ctx)
	if err != nil {
		return err
	}
	if err := checkUser(req.Header()); err != nil {
		return err
	}
	spec, err := specOf(req.Msg)
	if err != nil {
		return err
	}
	send := func(e *processpb.ProcessEvent) error { return stream.Send(&processpb.StartResponse{Event: e}) }
	if req.Msg.Pty != nil {
		return s.startPTY(ctx, p, sb, spec, req.Msg.GetPty(), send, keepalive(req.Header()))
	}
	// One exec starts the process and streams it: where an exec takes
	// long to start (a busy or emulated node), a run waits for one.
	return streamEvents(send, keepalive(req.Header()), false, func(start func(pid int) error, data func(procs.Chunk) error) (procs.State, procs.Exit, error) {
		return p.StartFollow(ctx, spec, func(proc *procs.Process) error { return start(proc.PID) }, data)
	})
}

// Connect streams a process started before, from its first output (envd
// sends only what comes after the connect; the whole output, which procs
// keeps up to its cap, is what a client that reconnects wants), until it
// ends. A process that has ended already gives its output and its end.
func (s *processService) Connect(ctx context.Context, req *connect.Request[processpb.ConnectRequest], stream *connect.ServerStream[processpb.ConnectResponse]) error {
	p, sb, sel, err := target(ctx, req.Msg.GetProcess())
	if err != nil {
		return err
	}
	send := func(e *processpb.ProcessEvent) error { return stream.Send(&processpb.ConnectResponse{Event: e}) }
	if t := s.ptys.find(sb, sel); t != nil {
		return t.attach(ctx, send, keepalive(req.Header()))
	}
	proc, err := p.Find(ctx, sel)
	if err != nil {
		return rpcError(err)
	}
	if err := send(startEvent(proc.PID)); err != nil {
		return err
	}
	return follow(ctx, p, procs.Selector{PID: proc.PID}, send, keepalive(req.Header()))
}

// specOf reads a StartRequest's process. The SDK runs every command as
// `/bin/bash -l -c CMD`; an image without bash runs it with /bin/sh, which
// takes the same flags.
func specOf(m *processpb.StartRequest) (procs.Spec, error) {
	c := m.GetProcess()
	if c == nil || c.GetCmd() == "" {
		return procs.Spec{}, connect.NewError(connect.CodeInvalidArgument, errors.New("the request has no process to start (process.cmd is empty)"))
	}
	spec := procs.Spec{Cmd: c.GetCmd(), Args: c.GetArgs(), Env: c.GetEnvs(), Cwd: c.GetCwd(), Tag: m.GetTag(), Stdin: true}
	if m.Stdin != nil {
		spec.Stdin = m.GetStdin()
	}
	if spec.Cmd == "/bin/bash" {
		spec.Fallback = "/bin/sh"
	}
	return spec, nil
}

func startEvent(pid int) *processpb.ProcessEvent {
	return &processpb.ProcessEvent{Event: &processpb.ProcessEvent_Start{Start: &processpb.ProcessEvent_StartEvent{Pid: uint32(pid)}}}
}

func endEvent(st procs.State, ex procs.Exit) *processpb.ProcessEvent {
	end := &processpb.ProcessEvent_EndEvent{ExitCode: int32(ex.Code), Exited: ex.Exited(), Status: ex.Status()}
	if st == procs.Lost {
		msg := "the process's supervisor in the sandbox is gone (killed by something in the sandbox), and its exit status with it"
		end = &processpb.ProcessEvent_EndEvent{ExitCode: -1, Status: "lost", Error: &msg}
	}
	return &processpb.ProcessEvent{Event: &processpb.ProcessEvent_End{End: end}}
}

func keepaliveEvent() *processpb.ProcessEvent {
	return &processpb.ProcessEvent{Event: &processpb.ProcessEvent_Keepalive{Keepalive: &processpb.ProcessEvent_KeepAlive{}}}
}

// keepalive is the interval the client asks keepalives at
// (Keepalive-Ping-Interval, seconds; the SDK sends 50): 0 for none.
func keepalive(h http.Header) time.Duration {
	n, err := strconv.Atoi(h.Get("Keepalive-Ping-Interval"))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, 3600)) * time.Second
}

// lockedSender makes send safe for the keepalive ticker and the stream.
type lockedSender struct {
	mu   sync.Mutex
	send func(*processpb.ProcessEvent) error
}

func (l *lockedSender) Send(e *processpb.ProcessEvent) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.send(e)
}

// keepAlive sends a keepalive every interval until stop is closed.
func keepAlive(l *lockedSender, interval time.Duration) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if l.Send(keepaliveEvent()) != nil {
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// follow streams a process's output and end.
func follow(ctx context.Context, p *procs.Procs, sel procs.Selector, send func(*processpb.ProcessEvent) error, interval time.Duration) error {
	return streamEvents(send, interval, true, func(_ func(int) error, data func(procs.Chunk) error) (procs.State, procs.Exit, error) {
		return p.Follow(ctx, sel, procs.Offsets{}, data)
	})
}

// streamEvents sends what run streams: the StartEvent when run calls start
// (unless started: it was sent before), DataEvents, then the EndEvent of
// how it ended; and keepalives every interval after the StartEvent, which
// clients take to be the first.
func streamEvents(send func(*processpb.ProcessEvent) error, interval time.Duration, started bool, run func(start func(pid int) error, data func(procs.Chunk) error) (procs.State, procs.Exit, error)) error {
	l := &lockedSender{send: send}
	stop := func() {}
	if started {
		stop = keepAlive(l, interval)
	}
	start := func(pid int) error {
		if err := l.Send(startEvent(pid)); err != nil {
			return err
		}
		stop = keepAlive(l, interval)
		return nil
	}
	st, ex, err := run(start, func(c procs.Chunk) error {
		d := &processpb.ProcessEvent_DataEvent{Output: &processpb.ProcessEvent_DataEvent_Stdout{Stdout: c.Data}}
		if c.Stderr {
			d.Output = &processpb.ProcessEvent_DataEvent_Stderr{Stderr: c.Data}
		}
		return l.Send(&processpb.ProcessEvent{Event: &processpb.ProcessEvent_Data{Data: d}})
	})
	stop()
	if err != nil {
		return rpcError(err)
	}
	return l.Send(endEvent(st, ex))
}
