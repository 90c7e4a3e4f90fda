package envd

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb/processpbconnect"
)

// events is what one Start or Connect stream said.
type events struct {
	pid            uint32
	stdout, stderr string
	pty            string
	end            *processpb.ProcessEvent_EndEvent
	keepalives     int
	first          string // the first event's kind
}

// collect reads a stream to its end; event gets each message's event.
func collect[T any](t *testing.T, s interface {
	Receive() bool
	Msg() *T
	Err() error
}, event func(*T) *processpb.ProcessEvent) (events, error) {
	t.Helper()
	var ev events
	for s.Receive() {
		e := event(s.Msg())
		kind := ""
		switch x := e.GetEvent().(type) {
		case *processpb.ProcessEvent_Start:
			kind = "start"
			ev.pid = x.Start.GetPid()
		case *processpb.ProcessEvent_Data:
			kind = "data"
			ev.stdout += string(x.Data.GetStdout())
			ev.stderr += string(x.Data.GetStderr())
			ev.pty += string(x.Data.GetPty())
		case *processpb.ProcessEvent_End:
			kind = "end"
			ev.end = x.End
		case *processpb.ProcessEvent_Keepalive:
			kind = "keepalive"
			ev.keepalives++
		}
		if ev.first == "" {
			ev.first = kind
		}
	}
	return ev, s.Err()
}

func startEv(r *processpb.StartResponse) *processpb.ProcessEvent     { return r.GetEvent() }
func connectEv(r *processpb.ConnectResponse) *processpb.ProcessEvent { return r.GetEvent() }

func startReq(cmd string, args ...string) *connect.Request[processpb.StartRequest] {
	return connect.NewRequest(&processpb.StartRequest{Process: &processpb.ProcessConfig{Cmd: cmd, Args: args}})
}

func pidSel(pid uint32) *processpb.ProcessSelector {
	return &processpb.ProcessSelector{Selector: &processpb.ProcessSelector_Pid{Pid: pid}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// As the SDK runs a command: /bin/bash -l -c, output streamed, the exact
// exit code in the end event.
func TestStartStreamsToTheEnd(t *testing.T) {
	for name, opts := range map[string][]connect.ClientOption{"proto": nil, "JSON, as the SDK speaks": {connect.WithProtoJSON()}} {
		t.Run(name, func(t *testing.T) { testStartStreamsToTheEnd(t, server(t, opts...)) })
	}
}

func testStartStreamsToTheEnd(t *testing.T, c processpbconnect.ProcessClient) {
	req := startReq("/bin/bash", "-l", "-c", "echo out; echo err >&2; exit 3")
	req.Header().Set("Keepalive-Ping-Interval", "50")
	req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("user:")))
	s, err := c.Start(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := collect(t, s, startEv)
	if err != nil {
		t.Fatal(err)
	}
	if ev.first != "start" || ev.pid == 0 || ev.stdout != "out\n" || ev.stderr != "err\n" || ev.end == nil {
		t.Fatalf("%+v", ev)
	}
	if ev.end.GetExitCode() != 3 || !ev.end.GetExited() || ev.end.GetStatus() != "exit status 3" || ev.end.Error != nil {
		t.Errorf("end %+v", ev.end)
	}
}

func TestKeepalives(t *testing.T) {
	c := server(t)
	req := startReq("sh", "-c", "sleep 2.5; echo done")
	req.Header().Set("Keepalive-Ping-Interval", "1")
	s, err := c.Start(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := collect(t, s, startEv)
	if err != nil || ev.keepalives < 1 || ev.stdout != "done\n" || ev.end.GetExitCode() != 0 {
		t.Fatalf("%+v %v", ev, err)
	}
}

// On a node where an exec takes seconds to start (a real kubelet under
// emulation took 20), a run waits for one exec, not a start's and a
// follow's, and its first event is still the start: the SDK takes anything
// else first for a broken stream, keepalives included.
func TestSlowNodeStartsInOneExec(t *testing.T) {
	c, ex := slowServer(t, 1500*time.Millisecond)
	req := startReq("sh", "-c", "echo done")
	req.Header().Set("Keepalive-Ping-Interval", "1")
	s, err := c.Start(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := collect(t, s, startEv)
	if err != nil || ev.first != "start" || ev.stdout != "done\n" || ev.end.GetExitCode() != 0 {
		t.Fatalf("%+v %v", ev, err)
	}
	if n := ex.execs.Load(); n != 1 {
		t.Errorf("a run took %d execs, want 1", n)
	}
}

// A background process outlives the stream that started it; Connect
// reaches it again, List shows it, SIGKILL ends it with 137 and "signal:
// killed", and a second kill finds nothing (the SDK's kill answers false).
func TestBackgroundConnectKill(t *testing.T) {
	c := server(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	req := startReq("sh", "-c", "echo started; sleep 100")
	tag := "server"
	req.Msg.Tag = &tag
	s, err := c.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() || s.Msg().GetEvent().GetStart() == nil {
		t.Fatalf("no start event: %v", s.Err())
	}
	pid := s.Msg().GetEvent().GetStart().GetPid()
	cancel() // the client goes away
	_ = s.Close()

	list, err := c.List(ctxT(t), connect.NewRequest(&processpb.ListRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range list.Msg.GetProcesses() {
		if p.GetPid() == pid {
			found = p.GetTag() == "server" && p.GetConfig().GetCmd() == "sh" && p.GetConfig().GetArgs()[1] == "echo started; sleep 100"
		}
	}
	if !found {
		t.Fatalf("pid %d not listed as started: %v", pid, list.Msg.GetProcesses())
	}

	cs, err := c.Connect(ctxT(t), connect.NewRequest(&processpb.ConnectRequest{Process: &processpb.ProcessSelector{Selector: &processpb.ProcessSelector_Tag{Tag: "server"}}}))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan events, 1)
	go func() {
		ev, err := collect(t, cs, connectEv)
		if err != nil {
			t.Error(err)
		}
		got <- ev
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := c.SendSignal(ctxT(t), connect.NewRequest(&processpb.SendSignalRequest{Process: pidSel(pid), Signal: processpb.Signal_SIGNAL_SIGKILL})); err != nil {
		t.Fatal(err)
	}
	ev := <-got
	if ev.first != "start" || ev.pid != pid || ev.stdout != "started\n" || ev.end == nil {
		t.Fatalf("connect: %+v", ev)
	}
	if ev.end.GetExitCode() != 137 || ev.end.GetExited() || ev.end.GetStatus() != "signal: killed" {
		t.Errorf("end %+v", ev.end)
	}
	_, err = c.SendSignal(ctxT(t), connect.NewRequest(&processpb.SendSignalRequest{Process: pidSel(pid), Signal: processpb.Signal_SIGNAL_SIGKILL}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("a second kill: %v", err)
	}
	list, err = c.List(ctxT(t), connect.NewRequest(&processpb.ListRequest{}))
	if err != nil || len(list.Msg.GetProcesses()) != 0 {
		t.Errorf("after the kill: %v %v", list.Msg.GetProcesses(), err)
	}
}

func TestStdinAndClose(t *testing.T) {
	c := server(t)
	req := startReq("sh", "-c", "cat; echo EOF")
	yes := true
	req.Msg.Stdin = &yes
	s, err := c.Start(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() {
		t.Fatal(s.Err())
	}
	pid := s.Msg().GetEvent().GetStart().GetPid()
	for _, in := range []string{"a\n", "b\n"} {
		if _, err := c.SendInput(ctxT(t), connect.NewRequest(&processpb.SendInputRequest{Process: pidSel(pid), Input: &processpb.ProcessInput{Input: &processpb.ProcessInput_Stdin{Stdin: []byte(in)}}})); err != nil {
			t.Fatal(err)
		}
	}
	// And through a stream of inputs.
	si := c.StreamInput(ctxT(t))
	for _, m := range []*processpb.StreamInputRequest{
		{Event: &processpb.StreamInputRequest_Start{Start: &processpb.StreamInputRequest_StartEvent{Process: pidSel(pid)}}},
		{Event: &processpb.StreamInputRequest_Data{Data: &processpb.StreamInputRequest_DataEvent{Input: &processpb.ProcessInput{Input: &processpb.ProcessInput_Stdin{Stdin: []byte("c\n")}}}}},
		{Event: &processpb.StreamInputRequest_Keepalive{Keepalive: &processpb.StreamInputRequest_KeepAlive{}}},
	} {
		if err := si.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := si.CloseAndReceive(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CloseStdin(ctxT(t), connect.NewRequest(&processpb.CloseStdinRequest{Process: pidSel(pid)})); err != nil {
		t.Fatal(err)
	}
	ev, err := collect(t, s, startEv)
	if err != nil || ev.stdout != "a\nb\nc\nEOF\n" || ev.end.GetExitCode() != 0 {
		t.Fatalf("%+v %v", ev, err)
	}
	// Without stdin (as the SDK asks by default): input is refused.
	req = startReq("sh", "-c", "sleep 100")
	no := false
	req.Msg.Stdin = &no
	s, err = c.Start(ctxT(t), req)
	if err != nil || !s.Receive() {
		t.Fatal(err, s.Err())
	}
	pid = s.Msg().GetEvent().GetStart().GetPid()
	_, err = c.SendInput(ctxT(t), connect.NewRequest(&processpb.SendInputRequest{Process: pidSel(pid), Input: &processpb.ProcessInput{Input: &processpb.ProcessInput_Stdin{Stdin: []byte("x")}}}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("input without stdin: %v", err)
	}
}

func TestUnknownPid(t *testing.T) {
	c := server(t)
	ctx := ctxT(t)
	sel := pidSel(999999999)
	var errs []error
	cs, err := c.Connect(ctx, connect.NewRequest(&processpb.ConnectRequest{Process: sel}))
	if err == nil {
		_, err = collect(t, cs, connectEv)
	}
	errs = append(errs, err)
	_, err = c.SendSignal(ctx, connect.NewRequest(&processpb.SendSignalRequest{Process: sel, Signal: processpb.Signal_SIGNAL_SIGTERM}))
	errs = append(errs, err)
	_, err = c.SendInput(ctx, connect.NewRequest(&processpb.SendInputRequest{Process: sel, Input: &processpb.ProcessInput{Input: &processpb.ProcessInput_Stdin{Stdin: []byte("x")}}}))
	errs = append(errs, err)
	_, err = c.CloseStdin(ctx, connect.NewRequest(&processpb.CloseStdinRequest{Process: sel}))
	errs = append(errs, err)
	_, err = c.Update(ctx, connect.NewRequest(&processpb.UpdateRequest{Process: sel}))
	errs = append(errs, err)
	for i, err := range errs {
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("call %d: %v", i, err)
		}
	}
}

func TestMalformedRequests(t *testing.T) {
	c := server(t)
	ctx := ctxT(t)
	startErr := func(req *connect.Request[processpb.StartRequest]) error {
		s, err := c.Start(ctx, req)
		if err != nil {
			return err
		}
		_, err = collect(t, s, startEv)
		return err
	}
	root := startReq("sh", "-c", "id")
	root.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("root:")))
	badEnv := startReq("sh")
	badEnv.Msg.Process.Envs = map[string]string{"A=B": "c"}
	badCwd := startReq("sh")
	cwd := "/no/such/dir"
	badCwd.Msg.Process.Cwd = &cwd
	for name, c := range map[string]struct {
		err  error
		code connect.Code
	}{
		"no process":    {startErr(connect.NewRequest(&processpb.StartRequest{})), connect.CodeInvalidArgument},
		"empty cmd":     {startErr(startReq("")), connect.CodeInvalidArgument},
		"root":          {startErr(root), connect.CodePermissionDenied},
		"bad env name":  {startErr(badEnv), connect.CodeInvalidArgument},
		"missing cwd":   {startErr(badCwd), connect.CodeInvalidArgument},
		"no selector":   {second(c.SendSignal(ctx, connect.NewRequest(&processpb.SendSignalRequest{Signal: processpb.Signal_SIGNAL_SIGKILL}))), connect.CodeInvalidArgument},
		"no signal":     {second(c.SendSignal(ctx, connect.NewRequest(&processpb.SendSignalRequest{Process: pidSel(1)}))), connect.CodeInvalidArgument},
		"no input":      {second(c.SendInput(ctx, connect.NewRequest(&processpb.SendInputRequest{Process: pidSel(1)}))), connect.CodeInvalidArgument},
		"tag with a LF": {second(c.CloseStdin(ctx, connect.NewRequest(&processpb.CloseStdinRequest{Process: &processpb.ProcessSelector{Selector: &processpb.ProcessSelector_Tag{Tag: "a\nb"}}}))), connect.CodeInvalidArgument},
	} {
		if connect.CodeOf(c.err) != c.code {
			t.Errorf("%s: %v, want %v", name, c.err, c.code)
		}
	}
	// Data before the stream names its process.
	si := c.StreamInput(ctx)
	_ = si.Send(&processpb.StreamInputRequest{Event: &processpb.StreamInputRequest_Data{Data: &processpb.StreamInputRequest_DataEvent{Input: &processpb.ProcessInput{Input: &processpb.ProcessInput_Stdin{Stdin: []byte("x")}}}}})
	if _, err := si.CloseAndReceive(); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("stream input without start: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// A PTY process lives in a terminal serve holds: its output comes as pty
// data, input goes to the terminal, Update resizes it, List and Connect
// find it by pid, and its exit code is exact.
func TestPTY(t *testing.T) {
	c := server(t)
	req := connect.NewRequest(&processpb.StartRequest{
		Process: &processpb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-i"}, Envs: map[string]string{"TERM": "xterm", "PS1": "$ "}},
		Pty:     &processpb.PTY{Size: &processpb.PTY_Size{Cols: 80, Rows: 24}},
	})
	s, err := c.Start(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() || s.Msg().GetEvent().GetStart() == nil {
		t.Fatalf("no start: %v", s.Err())
	}
	pid := s.Msg().GetEvent().GetStart().GetPid()
	list, err := c.List(ctxT(t), connect.NewRequest(&processpb.ListRequest{}))
	if err != nil || len(list.Msg.GetProcesses()) != 1 || list.Msg.GetProcesses()[0].GetPid() != pid {
		t.Fatalf("list: %v %v", list.Msg.GetProcesses(), err)
	}
	if _, err := c.Update(ctxT(t), connect.NewRequest(&processpb.UpdateRequest{Process: pidSel(pid), Pty: &processpb.PTY{Size: &processpb.PTY_Size{Cols: 100, Rows: 40}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendInput(ctxT(t), connect.NewRequest(&processpb.SendInputRequest{Process: pidSel(pid), Input: &processpb.ProcessInput{Input: &processpb.ProcessInput_Stdin{Stdin: []byte("x")}}})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("stdin to a terminal: %v", err)
	}
	if _, err := c.SendInput(ctxT(t), connect.NewRequest(&processpb.SendInputRequest{Process: pidSel(pid), Input: &processpb.ProcessInput{Input: &processpb.ProcessInput_Pty{Pty: []byte("echo cols=$(stty size); exit 5\n")}}})); err != nil {
		t.Fatal(err)
	}
	ev, err := collect(t, s, startEv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.pty, "cols=40 100") || ev.end.GetExitCode() != 5 || !ev.end.GetExited() {
		t.Fatalf("pty %q end %+v", ev.pty, ev.end)
	}
	if _, err := c.Update(ctxT(t), connect.NewRequest(&processpb.UpdateRequest{Process: pidSel(pid)})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("update after the end: %v", err)
	}
}

// A PTY process ends by signal like any other (137, not exited), for
// every stream attached to it.
func TestPTYKill(t *testing.T) {
	c := server(t)
	s, err := c.Start(ctxT(t), connect.NewRequest(&processpb.StartRequest{
		Process: &processpb.ProcessConfig{Cmd: "sleep", Args: []string{"100"}},
		Pty:     &processpb.PTY{Size: &processpb.PTY_Size{Cols: 80, Rows: 24}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() || s.Msg().GetEvent().GetStart() == nil {
		t.Fatalf("no start: %v", s.Err())
	}
	pid := s.Msg().GetEvent().GetStart().GetPid()
	// Another client reaches it by pid.
	cs, err := c.Connect(ctxT(t), connect.NewRequest(&processpb.ConnectRequest{Process: pidSel(pid)}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendSignal(ctxT(t), connect.NewRequest(&processpb.SendSignalRequest{Process: pidSel(pid), Signal: processpb.Signal_SIGNAL_SIGKILL})); err != nil {
		t.Fatal(err)
	}
	for name, ev := range map[string]func() (events, error){
		"start":   func() (events, error) { return collect(t, s, startEv) },
		"connect": func() (events, error) { return collect(t, cs, connectEv) },
	} {
		got, err := ev()
		if err != nil || got.end.GetExitCode() != 137 || got.end.GetExited() || got.end.GetStatus() != "signal: killed" {
			t.Errorf("%s: %+v %v", name, got.end, err)
		}
	}
}
