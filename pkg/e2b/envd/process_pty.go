package envd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"connectrpc.com/connect"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb"
	"github.com/agentkernel/kubectl-agentkernel/pkg/procs"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A PTY process. With no binary of ours in the sandbox, only an exec with
// a TTY gives a process a terminal, so a PTY process lives in a TTY exec
// that this server holds, not in the sandbox: it is registered here by
// sandbox and PID so that List, SendInput, Update, SendSignal and Connect
// find it. What that costs: a PTY does not outlive serve (when serve
// ends, the exec stream closes and the terminal's process gets SIGHUP),
// every PTY holds one exec stream open through the API server, and its
// output is kept here (the last maxPTYHistory bytes) rather than in the
// sandbox.

// maxPTYHistory is how much of a terminal's output a Connect replays.
const maxPTYHistory = 1 << 20

type ptyTable struct {
	mu sync.Mutex
	m  map[string]*ptyProc
}

func newPTYTable() *ptyTable { return &ptyTable{m: map[string]*ptyProc{}} }

func ptyKey(sb *Sandbox) string { return sb.Namespace + "/" + sb.ID }

func (t *ptyTable) find(sb *Sandbox, sel procs.Selector) *ptyProc {
	if sb == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.m {
		if p.sandbox == ptyKey(sb) && (sel.PID > 0 && p.pid == sel.PID || sel.PID <= 0 && sel.Tag != "" && p.spec.Tag == sel.Tag) {
			return p
		}
	}
	return nil
}

func (t *ptyTable) of(sb *Sandbox) []*ptyProc {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*ptyProc
	for _, p := range t.m {
		if p.sandbox == ptyKey(sb) {
			out = append(out, p)
		}
	}
	return out
}

func (t *ptyTable) add(p *ptyProc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[fmt.Sprintf("%s/%d", p.sandbox, p.pid)] = p
}

func (t *ptyTable) remove(p *ptyProc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, fmt.Sprintf("%s/%d", p.sandbox, p.pid))
}

// ptyProc is one terminal's process and the exec that holds it.
type ptyProc struct {
	sandbox string
	pid     int
	spec    procs.Spec
	in      *io.PipeWriter
	sizes   chan remotecommand.TerminalSize

	mu      sync.Mutex
	out     []byte // the last maxPTYHistory bytes of output
	base    int64  // offset of out[0] in the whole output
	changed chan struct{}
	ended   bool
	state   procs.State
	exit    procs.Exit
	sent    procs.Signal
}

// Next implements remotecommand.TerminalSizeQueue.
func (p *ptyProc) Next() *remotecommand.TerminalSize {
	s, ok := <-p.sizes
	if !ok {
		return nil
	}
	return &s
}

func (p *ptyProc) resize(cols, rows uint32) {
	s := remotecommand.TerminalSize{Width: uint16(min(cols, 1<<16-1)), Height: uint16(min(rows, 1<<16-1))}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	select { // the newest size wins over one not yet taken
	case <-p.sizes:
	default:
	}
	p.sizes <- s
}

func (p *ptyProc) write(b []byte) error {
	p.mu.Lock()
	ended := p.ended
	p.mu.Unlock()
	if ended {
		return fmt.Errorf("%w: pid %d", procs.ErrEnded, p.pid)
	}
	_, err := p.in.Write(b)
	return err
}

func (p *ptyProc) signal(ctx context.Context, ps *procs.Procs, sig procs.Signal) error {
	p.mu.Lock()
	p.sent = sig
	p.mu.Unlock()
	return ps.SignalTerminal(ctx, p.pid, sig)
}

// Write takes the terminal's output.
func (p *ptyProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out = append(p.out, b...)
	if over := len(p.out) - maxPTYHistory; over > 0 {
		p.out = append([]byte(nil), p.out[over:]...)
		p.base += int64(over)
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return len(b), nil
}

func (p *ptyProc) end(err error) {
	code := 0
	if err != nil {
		c, ok := sandbox.ExitCode(err)
		if !ok {
			c = -1
		}
		code = c
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ended = true
	p.state = procs.Exited
	if code < 0 {
		p.state = procs.Lost
	}
	p.exit = procs.ExitWith(code, p.sent)
	close(p.sizes)
	close(p.changed)
	p.changed = make(chan struct{})
}

// attach streams the terminal from its first kept output until it ends.
func (p *ptyProc) attach(ctx context.Context, send func(*processpb.ProcessEvent) error, interval time.Duration) error {
	l := &lockedSender{send: send}
	if err := l.Send(startEvent(p.pid)); err != nil {
		return err
	}
	stop := keepAlive(l, interval)
	defer stop()
	var off int64
	for {
		p.mu.Lock()
		off = max(off, p.base)
		data := append([]byte(nil), p.out[off-p.base:]...)
		changed, ended, st, ex := p.changed, p.ended, p.state, p.exit
		p.mu.Unlock()
		switch {
		case len(data) > 0:
			off += int64(len(data))
			for len(data) > 0 {
				n := min(len(data), 64<<10)
				ev := &processpb.ProcessEvent{Event: &processpb.ProcessEvent_Data{Data: &processpb.ProcessEvent_DataEvent{Output: &processpb.ProcessEvent_DataEvent_Pty{Pty: data[:n]}}}}
				if err := l.Send(ev); err != nil {
					return err
				}
				data = data[n:]
			}
		case ended:
			return l.Send(endEvent(st, ex))
		default:
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			}
		}
	}
}

// startPTY starts spec in a terminal held by this server and streams it.
func (s *processService) startPTY(ctx context.Context, ps *procs.Procs, sb *Sandbox, spec procs.Spec, pty *processpb.PTY, send func(*processpb.ProcessEvent) error, interval time.Duration) error {
	command, token, err := ps.PrepareTerminal(ctx, spec)
	if err != nil {
		return rpcError(err)
	}
	pr, pw := io.Pipe()
	outR, outW := io.Pipe()
	p := &ptyProc{sandbox: ptyKey(sb), spec: spec, in: pw, sizes: make(chan remotecommand.TerminalSize, 1), changed: make(chan struct{})}
	if size := pty.GetSize(); size != nil {
		p.sizes <- remotecommand.TerminalSize{Width: uint16(min(size.GetCols(), 1<<16-1)), Height: uint16(min(size.GetRows(), 1<<16-1))}
	}
	// The terminal belongs to serve, not to this request: the process
	// runs on when the client goes away, until it ends or serve does.
	execCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() {
		err := sb.Exec.Stream(execCtx, command, sandbox.Streams{Stdin: pr, Stdout: outW, TTY: true, SizeQueue: p})
		outW.CloseWithError(io.EOF)
		done <- err
	}()
	br := bufio.NewReader(outR)
	pid, err := procs.TerminalPID(br, token)
	if err != nil {
		cancel()
		_ = pw.Close()
		_, _ = io.Copy(io.Discard, outR)
		execErr := <-done
		// The spec (with its environment) must not stay in the sandbox.
		_ = ps.DiscardTerminal(context.WithoutCancel(ctx), token)
		if code, ok := sandbox.ExitCode(execErr); ok && code == 44 {
			return connect.NewError(connect.CodeUnavailable, errors.New("the terminal's spec vanished from the sandbox before it started"))
		}
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%v (%v)", err, execErr))
	}
	p.pid = pid
	s.ptys.add(p)
	go func() {
		_, _ = io.Copy(p, br)
		err := <-done
		cancel()
		_ = pw.Close()
		p.end(err)
		s.ptys.remove(p)
	}()
	return p.attach(ctx, send, interval)
}
