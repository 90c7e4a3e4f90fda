package procs

import (
	"testing"
	"time"
)

// ReadWait answers as soon as the process ends, as soon as max bytes of a
// stream have come, or when the wait is over, with the process running on.
func TestReadWait(t *testing.T) {
	p := newProcs(t, runners(t)["host"])
	start := func(script string) Selector {
		proc, err := p.Start(ctxT(t), Spec{Cmd: "sh", Args: []string{"-c", script}})
		if err != nil {
			t.Fatal(err)
		}
		return Selector{PID: proc.PID}
	}

	ends := start("echo a; sleep 0.3; echo b >&2; exit 4")
	o, err := p.ReadWait(ctxT(t), ends, Offsets{}, 0, 20*time.Second)
	if err != nil || string(o.Stdout) != "a\n" || string(o.Stderr) != "b\n" || o.State != Exited || o.Exit.Code != 4 || o.Next != (Offsets{2, 2}) {
		t.Errorf("a process that ends: %+v %v", o, err)
	}

	quiet := start("echo first; exec sleep 100")
	o, err = p.ReadWait(ctxT(t), quiet, Offsets{}, 0, 500*time.Millisecond)
	if err != nil || string(o.Stdout) != "first\n" || o.State != Running || o.More {
		t.Errorf("a quiet process past the wait: %+v %v", o, err)
	}

	// Two bytes of stdout come and the process goes on for 100 s: the
	// answer does not wait for it (the test's context would end first).
	chatty := start("printf ab; exec sleep 100")
	o, err = p.ReadWait(ctxT(t), chatty, Offsets{}, 2, time.Hour)
	if err != nil || string(o.Stdout) != "ab" || o.State != Running || o.Next.Stdout != 2 {
		t.Errorf("max bytes came: %+v %v", o, err)
	}
}
