package mcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
	"github.com/agentkernel/kubectl-agentkernel/pkg/procs"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// hostProcesses points the process tools at directories of the test's
// own (the host stands in for the sandbox, whose run directory it lacks),
// and kills whatever the test left running when it ends.
func hostProcesses(t *testing.T) {
	base := t.TempDir()
	dirs := func(run sandbox.Runner) *procs.Procs {
		return &procs.Procs{Exec: run, Dir: filepath.Join(base, "run"), OutputDir: filepath.Join(base, "tmp")}
	}
	old := newProcs
	newProcs = dirs
	t.Cleanup(func() {
		newProcs = old
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p := dirs(&testexec.HostRunner{})
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			all, _ := p.List(ctx)
			running := 0
			for _, q := range all {
				if q.State == procs.Running {
					running++
					_ = p.Signal(ctx, procs.Selector{PID: q.PID}, procs.SIGKILL)
				}
			}
			if running == 0 {
				return // and the supervisors are done with TempDir
			}
		}
	})
}

// processFixture is a server with one sandbox, "box", whose processes run
// on this machine.
func processFixture(t *testing.T) *fixture {
	hostProcesses(t)
	f := start(t, fakeCluster(), &hostExecutor{}, nil)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "box"})
	return f
}

// outputUntil polls process_output from the start until cond holds.
func outputUntil(t *testing.T, f *fixture, args map[string]any, what string, cond func(ProcessOutputOutput) bool) ProcessOutputOutput {
	t.Helper()
	var last ProcessOutputOutput
	eventually(t, what, func() bool {
		last = ok[ProcessOutputOutput](f, toolProcessOutput, args)
		return cond(last)
	})
	return last
}

// A dev server an agent starts and leaves running: it is listed with its
// tag and command (its environment's values never shown), checked on
// later by tag, its output read in pieces by offsets, and ended with
// TERM; then it is listed with how it ended.
func TestProcessDevServer(t *testing.T) {
	f := processFixture(t)
	dir := t.TempDir()
	const token = "s3cret-token-value"
	started := ok[StartProcessOutput](f, toolStartProcess, map[string]any{
		"sandbox": "box", "tag": "dev",
		"shell":   `printf 'listening on :%s in %s\n' "$PORT" "$PWD"; echo warming >&2; exec sleep 600`,
		"env":     map[string]string{"PORT": "8000", "API_TOKEN": token},
		"workdir": dir,
	})
	if started.PID <= 0 || started.State != "running" || started.Tag != "dev" {
		t.Fatalf("start_process: %+v", started)
	}
	want := "listening on :8000 in " + dir + "\n"

	list := ok[ListProcessesOutput](f, toolListProcesses, map[string]any{"sandbox": "box"})
	if len(list.Processes) != 1 {
		t.Fatalf("list_processes: %+v", list)
	}
	p := list.Processes[0]
	if p.PID != started.PID || p.Tag != "dev" || p.State != "running" || p.Exit != nil || p.Workdir != dir ||
		!strings.HasPrefix(p.Command, "sh -c 'printf") || strings.Join(p.EnvNames, ",") != "API_TOKEN,PORT" {
		t.Errorf("listed %+v", p)
	}
	if b, _ := json.Marshal(list); strings.Contains(string(b), token) {
		t.Errorf("list_processes shows an environment value: %s", b)
	}

	// Later, by tag: the whole line once it is there, still running.
	whole := outputUntil(t, f, map[string]any{"sandbox": "box", "tag": "dev"}, "the server's first line", func(o ProcessOutputOutput) bool {
		return o.Stdout == want && o.Stderr == "warming\n"
	})
	if whole.State != "running" || whole.Exit != nil || whole.More || whole.NextStdoutOffset != int64(len(want)) || whole.NextStderrOffset != 8 {
		t.Errorf("process_output: %+v", whole)
	}
	// Each check is one exec stream into the sandbox.
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{toolProcessOutput, map[string]any{"sandbox": "box", "tag": "dev"}},
		{toolListProcesses, map[string]any{"sandbox": "box"}},
	} {
		before := f.exec.count()
		f.call(c.tool, c.args)
		if n := f.exec.count() - before; n != 1 {
			t.Errorf("%s took %d exec streams, want 1", c.tool, n)
		}
	}
	// In pieces of 10 bytes, by pid, each read on from the last one's offsets.
	var got strings.Builder
	at := int64(0)
	for range 10 {
		piece := ok[ProcessOutputOutput](f, toolProcessOutput, map[string]any{"sandbox": "box", "pid": started.PID, "stdout_offset": at, "stderr_offset": 8, "max_bytes": 10})
		if piece.StdoutBytes > 10 || piece.Stderr != "" || piece.NextStdoutOffset != at+int64(piece.StdoutBytes) || piece.More != (piece.NextStdoutOffset < int64(len(want))) {
			t.Fatalf("piece from %d: %+v", at, piece)
		}
		got.WriteString(piece.Stdout)
		at = piece.NextStdoutOffset
		if !piece.More {
			break
		}
	}
	if got.String() != want {
		t.Errorf("read in pieces: %q, want %q", got.String(), want)
	}

	killed := ok[KillProcessOutput](f, toolKillProcess, map[string]any{"sandbox": "box", "tag": "dev"})
	if killed.PID != started.PID || !killed.Sent || killed.Signal != "TERM" || killed.State != "exited" || killed.Exit == nil || killed.Exit.Code != 143 || killed.Exit.Signal != "TERM" {
		t.Fatalf("kill_process: %+v", killed)
	}
	ended := ok[ProcessOutputOutput](f, toolProcessOutput, map[string]any{"sandbox": "box", "pid": started.PID, "stdout_offset": at, "stderr_offset": 8})
	if ended.State != "exited" || ended.Exit == nil || ended.Exit.Code != 143 || ended.Stdout != "" || ended.NextStdoutOffset != at {
		t.Errorf("process_output after the kill: %+v", ended)
	}
	// Killing it again is no error, and sends nothing.
	again := ok[KillProcessOutput](f, toolKillProcess, map[string]any{"sandbox": "box", "pid": started.PID, "signal": "KILL"})
	if again.Sent || again.State != "exited" || again.Exit == nil || again.Exit.Code != 143 {
		t.Errorf("kill_process of an ended process: %+v", again)
	}
	list = ok[ListProcessesOutput](f, toolListProcesses, map[string]any{"sandbox": "box"})
	if len(list.Processes) != 1 || list.Processes[0].State != "exited" || list.Processes[0].Exit == nil || list.Processes[0].Exit.Signal != "TERM" {
		t.Errorf("list_processes after the kill: %+v", list)
	}
}

// A process that ends by itself: wait_seconds answers once it has, with
// its exit code; the running ones are listed first.
func TestProcessExitAndWait(t *testing.T) {
	f := processFixture(t)
	long := ok[StartProcessOutput](f, toolStartProcess, map[string]any{"sandbox": "box", "command": []string{"sleep", "600"}})
	short := ok[StartProcessOutput](f, toolStartProcess, map[string]any{"sandbox": "box", "command": []string{"sh", "-c", "sleep 0.5; echo bye; echo oops >&2; exit 3"}})
	start := time.Now()
	out := ok[ProcessOutputOutput](f, toolProcessOutput, map[string]any{"sandbox": "box", "pid": short.PID, "wait_seconds": 30})
	if out.State != "exited" || out.Exit == nil || out.Exit.Code != 3 || out.Exit.Signal != "" || out.Stdout != "bye\n" || out.Stderr != "oops\n" {
		t.Errorf("process_output with wait: %+v", out)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the wait took %v: it did not answer when the process ended", d)
	}
	// A wait that runs out answers with what came: the process runs on.
	start = time.Now()
	out = ok[ProcessOutputOutput](f, toolProcessOutput, map[string]any{"sandbox": "box", "pid": long.PID, "wait_seconds": 1})
	if out.State != "running" || out.Exit != nil || out.Stdout != "" || time.Since(start) < time.Second {
		t.Errorf("process_output with a wait that ran out: %+v after %v", out, time.Since(start))
	}
	// One whose output fills max_bytes answers then, and runs on.
	chatty := ok[StartProcessOutput](f, toolStartProcess, map[string]any{"sandbox": "box", "shell": "sleep 0.5; printf 12345; exec sleep 600"})
	start = time.Now()
	out = ok[ProcessOutputOutput](f, toolProcessOutput, map[string]any{"sandbox": "box", "pid": chatty.PID, "wait_seconds": 30, "max_bytes": 5})
	if out.State != "running" || out.Stdout != "12345" || out.NextStdoutOffset != 5 || time.Since(start) > 20*time.Second {
		t.Errorf("process_output waiting for max_bytes: %+v after %v", out, time.Since(start))
	}
	ok[KillProcessOutput](f, toolKillProcess, map[string]any{"sandbox": "box", "pid": chatty.PID, "signal": "KILL"})
	list := ok[ListProcessesOutput](f, toolListProcesses, map[string]any{"sandbox": "box"})
	codes := map[int]int{}
	for _, p := range list.Processes[1:] {
		if p.State == "exited" {
			codes[p.PID] = p.Exit.Code
		}
	}
	if len(list.Processes) != 3 || list.Processes[0].PID != long.PID || list.Processes[0].State != "running" || len(codes) != 2 || codes[short.PID] != 3 || codes[chatty.PID] != 137 {
		t.Errorf("list_processes: %+v", list)
	}
	killed := ok[KillProcessOutput](f, toolKillProcess, map[string]any{"sandbox": "box", "pid": long.PID, "signal": "KILL"})
	if !killed.Sent || killed.State != "exited" || killed.Exit.Code != 137 || killed.Exit.Signal != "KILL" {
		t.Errorf("kill_process KILL: %+v", killed)
	}
}

// stdin: what send_process_input writes the process reads, in order;
// closing it ends a process that reads to the end; writing to one that has
// none is an error that says how to get one.
func TestProcessStdin(t *testing.T) {
	f := processFixture(t)
	cat := ok[StartProcessOutput](f, toolStartProcess, map[string]any{"sandbox": "box", "command": []string{"cat"}, "open_stdin": true, "tag": "cat"})
	sent := ok[ProcessInputOutput](f, toolProcessInput, map[string]any{"sandbox": "box", "tag": "cat", "data": "hello\n"})
	if sent.Bytes != 6 || sent.StdinClosed {
		t.Errorf("send_process_input: %+v", sent)
	}
	outputUntil(t, f, map[string]any{"sandbox": "box", "pid": cat.PID}, "cat echoes the first line", func(o ProcessOutputOutput) bool {
		return o.Stdout == "hello\n" && o.State == "running"
	})
	bin := base64.StdEncoding.EncodeToString([]byte("bytes\x00\x01\n"))
	sent = ok[ProcessInputOutput](f, toolProcessInput, map[string]any{"sandbox": "box", "pid": cat.PID, "data": bin, "encoding": "base64", "close_stdin": true})
	if sent.Bytes != 8 || !sent.StdinClosed {
		t.Errorf("send_process_input with close_stdin: %+v", sent)
	}
	out := ok[ProcessOutputOutput](f, toolProcessOutput, map[string]any{"sandbox": "box", "pid": cat.PID, "wait_seconds": 30, "encoding": "base64"})
	if b, _ := base64.StdEncoding.DecodeString(out.Stdout); string(b) != "hello\nbytes\x00\x01\n" || out.State != "exited" || out.Exit.Code != 0 {
		t.Errorf("cat after its stdin closed: %+v (%q)", out, b)
	}
	text := ok[ProcessOutputOutput](f, toolProcessOutput, map[string]any{"sandbox": "box", "pid": cat.PID})
	if text.Stdout != "hello\nbytes??\n" || !text.Altered || text.StdoutBytes != 14 {
		t.Errorf("control characters in text: %+v", text)
	}
	f.fails(toolProcessInput, map[string]any{"sandbox": "box", "pid": cat.PID, "data": "late\n"}, "has ended")

	deaf := ok[StartProcessOutput](f, toolStartProcess, map[string]any{"sandbox": "box", "command": []string{"sleep", "600"}})
	f.fails(toolProcessInput, map[string]any{"sandbox": "box", "pid": deaf.PID, "data": "x"},
		fmt.Sprintf(`the stdin of the process with pid %d in sandbox "box" is closed, or it was started without open_stdin; start it with open_stdin`, deaf.PID))
}

// Output a process splits inside a character, or fills with terminal
// escapes: text shows whole characters only and marks what it replaced;
// the next read starts at the character that was cut.
func TestProcessOutputText(t *testing.T) {
	f := processFixture(t)
	p := ok[StartProcessOutput](f, toolStartProcess, map[string]any{"sandbox": "box", "shell": `printf 'h\303\251\033[2J\r\n'; exec sleep 600`})
	outputUntil(t, f, map[string]any{"sandbox": "box", "pid": p.PID, "encoding": "base64"}, "the output", func(o ProcessOutputOutput) bool {
		return o.StdoutBytes == 9
	})
	// "h" and the first byte of "é": the cut byte is left for the next read.
	cut := ok[ProcessOutputOutput](f, toolProcessOutput, map[string]any{"sandbox": "box", "pid": p.PID, "max_bytes": 2})
	if cut.Stdout != "h" || cut.StdoutBytes != 1 || cut.NextStdoutOffset != 1 || !cut.More || cut.Altered {
		t.Errorf("a read cut inside a character: %+v", cut)
	}
	rest := ok[ProcessOutputOutput](f, toolProcessOutput, map[string]any{"sandbox": "box", "pid": p.PID, "stdout_offset": 1})
	if rest.Stdout != "é?[2J\n" || !rest.Altered || rest.NextStdoutOffset != 9 || rest.More {
		t.Errorf("the rest: %+v", rest)
	}
}

// Every mistake an agent can make gets an error that says what to do.
func TestProcessErrors(t *testing.T) {
	f := processFixture(t)
	for _, c := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{toolStartProcess, map[string]any{"sandbox": "box"}, "nothing to run: give command"},
		{toolStartProcess, map[string]any{"sandbox": "box", "command": []string{"true"}, "shell": "true"}, "not both"},
		{toolStartProcess, map[string]any{"sandbox": "box", "command": []string{""}}, "the program, is empty"},
		{toolStartProcess, map[string]any{"sandbox": "box", "command": []string{"true"}, "env": map[string]string{"A-B": "x"}}, `"A-B" is not an environment variable name`},
		{toolStartProcess, map[string]any{"sandbox": "box", "command": []string{"true"}, "workdir": "/no/such/dir"}, `the working directory "/no/such/dir" is not a directory in the sandbox`},
		{toolStartProcess, map[string]any{"sandbox": "nobox", "command": []string{"true"}}, `sandbox "nobox" is not one this server may use`},
		{toolStartProcess, map[string]any{"sandbox": "box", "command": []string{"true"}, "tag": "two\nlines"}, "a tag is at most 256 bytes of printable UTF-8 on one line"},
		{toolProcessOutput, map[string]any{"sandbox": "box", "tag": "two\nlines"}, "a tag is at most 256 bytes of printable UTF-8 on one line"},
		{toolProcessOutput, map[string]any{"sandbox": "box", "pid": 1, "encoding": "hex"}, "hex does not equal any of: [text base64]"},
		{toolProcessOutput, map[string]any{"sandbox": "box"}, "name the process: give its pid (or its tag); list_processes lists them"},
		{toolProcessOutput, map[string]any{"sandbox": "box", "pid": 1, "tag": "x"}, "give either pid or tag, not both"},
		{toolProcessOutput, map[string]any{"sandbox": "box", "pid": 99999999}, `sandbox "box" has no background process with pid 99999999; list_processes lists them`},
		{toolProcessOutput, map[string]any{"sandbox": "box", "tag": "nope"}, `sandbox "box" has no background process with tag "nope"`},
		{toolProcessOutput, map[string]any{"sandbox": "box", "pid": 1, "stdout_offset": -1}, "must not be negative"},
		{toolProcessOutput, map[string]any{"sandbox": "box", "pid": 1, "wait_seconds": 100000}, "wait_seconds must be between 0 and 600"},
		{toolProcessInput, map[string]any{"sandbox": "box", "pid": 99999999, "data": "x"}, `sandbox "box" has no background process with pid 99999999`},
		{toolProcessInput, map[string]any{"sandbox": "box", "pid": 1}, "nothing to do: give data to write, close_stdin, or both"},
		{toolProcessInput, map[string]any{"sandbox": "box", "pid": 1, "data": "!", "encoding": "base64"}, "data: content is not valid base64"},
		{toolKillProcess, map[string]any{"sandbox": "box", "pid": 99999999}, `sandbox "box" has no background process with pid 99999999`},
		{toolKillProcess, map[string]any{"sandbox": "box", "tag": "nope"}, `has no background process with tag "nope"`},
	} {
		f.fails(c.tool, c.args, c.want)
	}
	// The schema names the signals; anything else is refused before a call.
	if res := f.call(toolKillProcess, map[string]any{"sandbox": "box", "pid": 1, "signal": "STOP"}); !res.IsError {
		t.Errorf("kill_process with signal STOP: %s", text(res))
	}
	if list := ok[ListProcessesOutput](f, toolListProcesses, map[string]any{"sandbox": "box"}); len(list.Processes) != 0 {
		t.Errorf("failed starts left processes: %+v", list)
	}
}

// A sandbox that stopped (its TTL ran out) while a process ran: every
// process tool says so, and nothing more is exec'd into its Pod.
func TestProcessStoppedSandbox(t *testing.T) {
	f := processFixture(t)
	p := ok[StartProcessOutput](f, toolStartProcess, map[string]any{"sandbox": "box", "command": []string{"sleep", "600"}})
	pod := f.pod("box")
	pod.Status.Phase, pod.Status.Reason = corev1.PodFailed, "DeadlineExceeded"
	if _, err := f.cs.CoreV1().Pods(testNamespace).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	execs := f.exec.count()
	const want = `sandbox "box" cannot run commands: its TTL ran out; create another with create_sandbox`
	f.fails(toolProcessOutput, map[string]any{"sandbox": "box", "pid": p.PID}, want)
	f.fails(toolListProcesses, map[string]any{"sandbox": "box"}, want)
	f.fails(toolProcessInput, map[string]any{"sandbox": "box", "pid": p.PID, "data": "x"}, want)
	f.fails(toolKillProcess, map[string]any{"sandbox": "box", "pid": p.PID}, want)
	f.fails(toolStartProcess, map[string]any{"sandbox": "box", "command": []string{"true"}}, want)
	if n := f.exec.count(); n != execs {
		t.Errorf("%d commands ran in a stopped sandbox", n-execs)
	}
}

// A process that ignores TERM: kill_process answers after wait_seconds
// that it still runs, and KILL ends it.
func TestProcessKillStubborn(t *testing.T) {
	f := processFixture(t)
	p := ok[StartProcessOutput](f, toolStartProcess, map[string]any{"sandbox": "box", "tag": "stubborn",
		"shell": `trap '' TERM; echo ready; while :; do sleep 0.1; done`})
	outputUntil(t, f, map[string]any{"sandbox": "box", "pid": p.PID}, "its trap set", func(o ProcessOutputOutput) bool { return o.Stdout == "ready\n" })
	start := time.Now()
	termed := ok[KillProcessOutput](f, toolKillProcess, map[string]any{"sandbox": "box", "tag": "stubborn", "wait_seconds": 1})
	if !termed.Sent || termed.State != "running" || termed.Exit != nil || time.Since(start) < time.Second {
		t.Fatalf("kill_process TERM of a process that ignores it: %+v after %v", termed, time.Since(start))
	}
	killed := ok[KillProcessOutput](f, toolKillProcess, map[string]any{"sandbox": "box", "tag": "stubborn", "signal": "KILL"})
	if !killed.Sent || killed.PID != p.PID || killed.State != "exited" || killed.Exit == nil || killed.Exit.Code != 137 || killed.Exit.Signal != "KILL" {
		t.Errorf("kill_process KILL: %+v", killed)
	}
}

// A persistent sandbox suspended while its process ran: a process tool
// resumes it, and says that its processes ended with the Pod.
func TestProcessAfterSuspend(t *testing.T) {
	hostProcesses(t)
	f := start(t, fakeCluster(), &hostExecutor{}, persisting)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "nap", "persist": true})
	p := ok[StartProcessOutput](f, toolStartProcess, map[string]any{"sandbox": "nap", "command": []string{"true"}})
	outputUntil(t, f, map[string]any{"sandbox": "nap", "pid": p.PID}, "it ends", func(o ProcessOutputOutput) bool { return o.State == "exited" })
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{toolProcessOutput, map[string]any{}},
		{toolKillProcess, map[string]any{}},
		{toolProcessInput, map[string]any{"data": "x"}},
	} {
		ok[SuspendOutput](f, toolSuspend, map[string]any{"sandbox": "nap"})
		// The host stands in for the sandbox and keeps its processes: a
		// Pod that ends takes them along.
		hostProcesses(t)
		c.args["sandbox"], c.args["pid"] = "nap", p.PID
		res := f.call(c.tool, c.args)
		got := text(res)
		if !res.IsError || !strings.HasPrefix(got, fmt.Sprintf(`sandbox "nap" has no background process with pid %d: it was suspended `, p.PID)) ||
			!strings.HasSuffix(got, "and this call resumed it; its processes ended with its Pod: start them again with start_process") {
			t.Errorf("%s after a suspend: %s", c.tool, got)
		}
	}
}
