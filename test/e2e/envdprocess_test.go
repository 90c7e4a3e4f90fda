package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb/processpbconnect"
)

// processEnd reads a Start or Connect stream to its end: its PID, stdout
// and end event.
func processEnd(t *testing.T, receive func() bool, event func() *processpb.ProcessEvent, streamErr func() error) (uint32, string, *processpb.ProcessEvent_EndEvent) {
	t.Helper()
	var pid uint32
	var out string
	var end *processpb.ProcessEvent_EndEvent
	for receive() {
		switch e := event().GetEvent().(type) {
		case *processpb.ProcessEvent_Start:
			pid = e.Start.GetPid()
		case *processpb.ProcessEvent_Data:
			out += string(e.Data.GetStdout())
		case *processpb.ProcessEvent_End:
			end = e.End
		}
	}
	if err := streamErr(); err != nil {
		t.Fatal(err)
	}
	return pid, out, end
}

// TestEnvdProcesses drives envd's Process service through the real API
// server's exec: the start exec ends while the process runs on, a
// process outlives the stream that started it, and the exit code, stdin
// and SIGKILL are exact.
func TestEnvdProcesses(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	ctx := context.Background()
	h := envdOf(t, ns, "procs")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c := processpbconnect.NewProcessClient(srv.Client(), srv.URL)

	// A command to its end, as the SDK runs it.
	s, err := c.Start(ctx, connect.NewRequest(&processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", "echo hi; sleep 1; echo bye; exit 7"}}}))
	if err != nil {
		t.Fatal(err)
	}
	pid, out, end := processEnd(t, s.Receive, func() *processpb.ProcessEvent { return s.Msg().GetEvent() }, s.Err)
	if pid == 0 || out != "hi\nbye\n" || end.GetExitCode() != 7 || !end.GetExited() {
		t.Fatalf("pid %d, %q, end %+v", pid, out, end)
	}

	// In the background: the client goes away after the start event.
	bg, cancel := context.WithCancel(ctx)
	s, err = c.Start(bg, connect.NewRequest(&processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: "sh", Args: []string{"-c", "echo started; exec cat"}}}))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() || s.Msg().GetEvent().GetStart() == nil {
		t.Fatalf("no start event: %v", s.Err())
	}
	pid = s.Msg().GetEvent().GetStart().GetPid()
	cancel()
	time.Sleep(time.Second)
	list, err := c.List(ctx, connect.NewRequest(&processpb.ListRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, p := range list.Msg.GetProcesses() {
		listed = listed || p.GetPid() == pid
	}
	if !listed {
		t.Fatalf("pid %d is not running after its stream ended: %v", pid, list.Msg.GetProcesses())
	}
	sel := &processpb.ProcessSelector{Selector: &processpb.ProcessSelector_Pid{Pid: pid}}
	if _, err := c.SendInput(ctx, connect.NewRequest(&processpb.SendInputRequest{Process: sel, Input: &processpb.ProcessInput{Input: &processpb.ProcessInput_Stdin{Stdin: []byte("echoed\n")}}})); err != nil {
		t.Fatal(err)
	}
	cs, err := c.Connect(ctx, connect.NewRequest(&processpb.ConnectRequest{Process: sel}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, out, end = processEnd(t, cs.Receive, func() *processpb.ProcessEvent { return cs.Msg().GetEvent() }, cs.Err)
	}()
	time.Sleep(time.Second)
	if _, err := c.SendSignal(ctx, connect.NewRequest(&processpb.SendSignalRequest{Process: sel, Signal: processpb.Signal_SIGNAL_SIGKILL})); err != nil {
		t.Fatal(err)
	}
	<-done
	if out != "started\nechoed\n" || end.GetExitCode() != 137 || end.GetExited() || end.GetStatus() != "signal: killed" {
		t.Fatalf("connect: %q, end %+v", out, end)
	}
	if _, err := c.SendSignal(ctx, connect.NewRequest(&processpb.SendSignalRequest{Process: sel, Signal: processpb.Signal_SIGNAL_SIGKILL})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("a second kill: %v", err)
	}

	// In a terminal serve holds: input as pty bytes, the exact exit.
	ps, err := c.Start(ctx, connect.NewRequest(&processpb.StartRequest{
		Process: &processpb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-i"}, Envs: map[string]string{"PS1": "$ "}},
		Pty:     &processpb.PTY{Size: &processpb.PTY_Size{Cols: 80, Rows: 24}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !ps.Receive() || ps.Msg().GetEvent().GetStart() == nil {
		t.Fatalf("no pty start event: %v", ps.Err())
	}
	sel = &processpb.ProcessSelector{Selector: &processpb.ProcessSelector_Pid{Pid: ps.Msg().GetEvent().GetStart().GetPid()}}
	// A user types, reads the answer, then types on: a terminal's last
	// output may be lost when its process exits at once (the exec stream
	// closes with it), so the exit comes only after the answer was read.
	input := func(line string) {
		t.Helper()
		if _, err := c.SendInput(ctx, connect.NewRequest(&processpb.SendInputRequest{Process: sel, Input: &processpb.ProcessInput{Input: &processpb.ProcessInput_Pty{Pty: []byte(line)}}})); err != nil {
			t.Fatal(err)
		}
	}
	input("echo in-a-$((1+1))-tty\n")
	var tty string
	end = nil
	exited := false
	for ps.Receive() {
		switch e := ps.Msg().GetEvent().GetEvent().(type) {
		case *processpb.ProcessEvent_Data:
			tty += string(e.Data.GetPty())
			if !exited && strings.Contains(tty, "in-a-2-tty") {
				exited = true
				input("exit 5\n")
			}
		case *processpb.ProcessEvent_End:
			end = e.End
		}
	}
	if ps.Err() != nil || !strings.Contains(tty, "in-a-2-tty") || end.GetExitCode() != 5 {
		t.Fatalf("pty: %q, end %+v, %v", tty, end, ps.Err())
	}
}
