package procs

import (
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// countingRunner counts the execs a call makes.
type countingRunner struct {
	sandbox.Runner
	n atomic.Int32
}

func (c *countingRunner) Run(ctx context.Context, argv []string, in io.Reader, out, errOut io.Writer) error {
	c.n.Add(1)
	return c.Runner.Run(ctx, argv, in, out, errOut)
}

// startFollow runs spec with StartFollow and checks that it took one exec
// and said which process it started before any of its output.
func startFollow(t *testing.T, p *Procs, spec Spec) (stdout, stderr string, st State, ex Exit) {
	t.Helper()
	counted := &countingRunner{Runner: p.Exec}
	q := *p
	q.Exec = counted
	var o outputs
	var proc *Process
	st, ex, err := q.StartFollow(ctxT(t), spec, func(started *Process) error {
		if proc != nil || started.PID <= 0 || started.State != Running || !validID(started.ID) {
			t.Errorf("started %+v (called before with %+v)", started, proc)
		}
		proc = started
		return nil
	}, func(c Chunk) error {
		if proc == nil {
			t.Errorf("output %q came before the start", c.Data)
		}
		return o.add(c)
	})
	if err != nil {
		t.Fatalf("StartFollow(%+v): %v", spec, err)
	}
	if n := counted.n.Load(); n != 1 {
		t.Errorf("StartFollow took %d execs, want 1", n)
	}
	return o.stdout.String(), o.stderr.String(), st, ex
}

// What a start refuses, StartFollow refuses the same way, before it says
// anything started and leaving nothing behind.
func TestStartFollowRefuses(t *testing.T) {
	p := newProcs(t, runners(t)["host"])
	started := func(*Process) error { t.Error("a refused start was said to have started"); return nil }
	chunk := func(Chunk) error { t.Error("a refused start had output"); return nil }
	_, _, err := p.StartFollow(ctxT(t), Spec{Cmd: "sh", Cwd: "/no/such/dir"}, started, chunk)
	var fe field.Error
	if !errors.As(err, &fe) || fe.Field != "cwd" {
		t.Errorf("a missing cwd: %v; want an error about cwd", err)
	}
	if _, _, err := p.StartFollow(ctxT(t), Spec{Cmd: ""}, started, chunk); !errors.As(err, &fe) || fe.Field != "cmd" {
		t.Errorf("no program: %v; want an error about cmd", err)
	}
	if entries, _ := os.ReadDir(p.Dir); len(entries) != 0 {
		t.Errorf("a refused start left %d directories", len(entries))
	}
	p.Keep = 1
	if _, err := p.Start(ctxT(t), Spec{Cmd: "sleep", Args: []string{"100"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.StartFollow(ctxT(t), Spec{Cmd: "true"}, started, chunk); !errors.Is(err, ErrTooMany) {
		t.Errorf("one process more than Keep: %v; want ErrTooMany", err)
	}
}

// A client that goes away (started or fn fails, or ctx ends) ends the
// stream, not the process: Follow reaches it again, from its start, with
// its whole output and its exit.
func TestStartFollowClientGoesAway(t *testing.T) {
	for name, stop := range map[string]func(cancel context.CancelFunc) (started func(*Process) error, fn func(Chunk) error){
		"started fails": func(context.CancelFunc) (func(*Process) error, func(Chunk) error) {
			return func(*Process) error { return errGone }, func(Chunk) error { return nil }
		},
		"fn fails": func(context.CancelFunc) (func(*Process) error, func(Chunk) error) {
			return func(*Process) error { return nil }, func(Chunk) error { return errGone }
		},
		"ctx ends": func(cancel context.CancelFunc) (func(*Process) error, func(Chunk) error) {
			return func(*Process) error { return nil }, func(Chunk) error { cancel(); return nil }
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcs(t, runners(t)["host"])
			ctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			started, fn := stop(cancel)
			var proc *Process
			_, _, err := p.StartFollow(ctx, Spec{Cmd: "sh", Args: []string{"-c", "echo one; read -r _ </dev/null; sleep 1; echo two; exit 9"}},
				func(q *Process) error { proc = q; return started(q) }, fn)
			if err == nil || (!errors.Is(err, errGone) && !errors.Is(err, context.Canceled)) {
				t.Fatalf("StartFollow = %v; want the client's error", err)
			}
			if proc == nil {
				t.Fatal("the process was not said to have started")
			}
			stdout, _, st, ex := follow(t, p, Selector{PID: proc.PID}, Offsets{})
			if stdout != "one\ntwo\n" || st != Exited || ex.Code != 9 {
				t.Errorf("followed again: %q %v %+v; want the whole output and exit 9", stdout, st, ex)
			}
		})
	}
}

var errGone = errors.New("the client went away")
