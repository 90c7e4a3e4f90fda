package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// The MCP server meets a client nobody here wrote: the MCP Inspector's CLI
// mode, installed from the npm registry at a pinned version (and pinned
// dependencies) by hack/npm-tools.sh. It makes one call per run: it starts
// `kubectl agentkernel mcp`, initializes, calls, disconnects. So the
// sandbox a create makes outlives its session only with --keep, and later
// runs reach it with --adopt — the way a user hands an agent a sandbox.

var inspectorPath = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("../../hack/npm-tools.sh", "mcp-inspector").Output()
	if err != nil {
		var stderr []byte
		if exitErr, ok := err.(*exec.ExitError); ok {
			stderr = exitErr.Stderr
		}
		return "", fmt.Errorf("installing the MCP Inspector: %v: %s", err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
})

// inspectorServer is `kubectl agentkernel mcp` as an MCP client's config
// file names it (the "mcpServers" format of Claude Desktop, Gemini CLI,
// Cursor and the Inspector), with its stderr appended to a log file.
type inspectorServer struct {
	t    *testing.T
	dir  string
	log  string
	env  map[string]string
	args []string // after `mcp`
	// transcript is everything the Inspector printed: every tool result.
	transcript bytes.Buffer
}

func newInspectorServer(t *testing.T, ns string, args ...string) *inspectorServer {
	dir := t.TempDir()
	return &inspectorServer{t: t, dir: dir, log: filepath.Join(dir, "server.log"), env: map[string]string{},
		args: append([]string{"--kubeconfig", env.kubeconfig, "-n", ns}, args...)}
}

// call runs the Inspector once: method with its options, plus extra server
// flags for this run. It returns the Inspector's stdout (the result, as
// JSON).
func (s *inspectorServer) call(extra []string, method string, options ...string) []byte {
	s.t.Helper()
	inspector, err := inspectorPath()
	if err != nil {
		s.t.Fatal(err)
	}
	// The shell only sends the server's stderr to the log: the Inspector
	// swallows it.
	args := append([]string{"-c", `log=$1; shift; exec "$@" 2>>"$log"`, "sh", s.log, env.binary, "mcp"}, s.args...)
	config := map[string]any{"mcpServers": map[string]any{"agentkernel": map[string]any{
		"command": "sh", "args": append(args, extra...), "env": s.env,
	}}}
	b, _ := json.Marshal(config)
	file := filepath.Join(s.dir, "mcp.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, inspector, append([]string{"--cli", "--config", file, "--server", "agentkernel", "--method", method}, options...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "KUBECONFIG=/nonexistent"}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(s.log)
		s.t.Fatalf("inspector --method %s %v: %v\nstdout: %s\nstderr: %s\nserver log:\n%s", method, options, err, out.String(), errOut.String(), log)
	}
	s.transcript.Write(out.Bytes())
	return out.Bytes()
}

// tool calls a tool that must succeed and returns its structured result.
func (s *inspectorServer) tool(extra []string, name string, args ...string) map[string]any {
	s.t.Helper()
	options := []string{"--tool-name", name}
	for _, a := range args {
		options = append(options, "--tool-arg", a)
	}
	out := s.call(extra, "tools/call", options...)
	var res struct {
		IsError           bool           `json:"isError"`
		StructuredContent map[string]any `json:"structuredContent"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		s.t.Fatalf("%s: the Inspector printed %s: %v", name, out, err)
	}
	if res.IsError || res.StructuredContent == nil {
		s.t.Fatalf("%s %v failed: %s", name, args, out)
	}
	return res.StructuredContent
}

func TestMCPInspector(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "input.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const secret = "sk-e2e-mcp-secret-5150"
	srv := newInspectorServer(t, ns, "--root", root, "--secret-env", "E2E_MCP_SECRET")
	srv.env["E2E_MCP_SECRET"] = secret
	out := srv.call(nil, "tools/list")
	var list struct{ Tools []sdk.Tool }
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatal(err)
	}
	names := map[string]sdk.Tool{}
	for _, tool := range list.Tools {
		names[tool.Name] = tool
	}
	for _, want := range []string{"create_sandbox", "exec", "write_file", "read_file", "list_directory", "copy_in", "copy_out", "list_sandboxes", "delete_sandbox",
		"start_process", "list_processes", "process_output", "send_process_input", "kill_process"} {
		if _, ok := names[want]; !ok {
			t.Errorf("tools/list lacks %s: %s", want, out)
		}
	}
	if a := names["read_file"].Annotations; a == nil || !a.ReadOnlyHint {
		t.Errorf("read_file is not marked read-only: %+v", a)
	}
	if a := names["delete_sandbox"].Annotations; a == nil || a.DestructiveHint == nil || !*a.DestructiveHint {
		t.Errorf("delete_sandbox is not marked destructive: %+v", a)
	}

	// create, kept beyond its session.
	created := srv.tool([]string{"--keep"}, "create_sandbox", "name=demo", "ttl=20m")
	if created["name"] != "demo" || created["usable"] != true || created["network"] != "none" {
		t.Fatalf("create_sandbox: %v", created)
	}
	pod, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), sandbox.PodName("demo"), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the kept sandbox: %v", err)
	}
	if pod.Status.Phase != corev1.PodRunning || pod.Spec.ActiveDeadlineSeconds == nil || *pod.Spec.ActiveDeadlineSeconds != 1200 {
		t.Fatalf("sandbox pod: phase %s, activeDeadlineSeconds %v", pod.Status.Phase, pod.Spec.ActiveDeadlineSeconds)
	}
	s, err := env.cs.CoreV1().Secrets(ns).Get(context.Background(), sandbox.SecretName("demo"), metav1.GetOptions{})
	if err != nil || string(s.Data["E2E_MCP_SECRET"]) != secret {
		t.Fatalf("the sandbox's Secret: %v", err)
	}

	// exec, read_file, copies and delete in later sessions, which adopt it.
	adopt := []string{"--adopt", "demo"}
	dir := workPath(ns, "mcp")
	ran := srv.tool(adopt, "exec", "sandbox=demo", fmt.Sprintf(`command=["sh","-c","mkdir -p %s && echo hello > %s/greeting.txt && echo done && echo warn >&2 && exit 7"]`, dir, dir))
	if ran["exit_code"] != 7.0 || ran["stdout"] != "done\n" || ran["stderr"] != "warn\n" || ran["timed_out"] != false {
		t.Fatalf("exec: %v", ran)
	}
	read := srv.tool(adopt, "read_file", "sandbox=demo", "path="+dir+"/greeting.txt")
	if read["content"] != "hello\n" || read["truncated"] != false {
		t.Fatalf("read_file: %v", read)
	}
	if in := srv.tool(adopt, "copy_in", "sandbox=demo", "local_path=input.txt", "sandbox_path="+dir+"/"); in["to"] != "demo:"+dir+"/" {
		t.Errorf("copy_in: %v", in)
	}
	if out := srv.tool(adopt, "copy_out", "sandbox=demo", "sandbox_path="+dir, "local_path=back/"); out["to"] != "back" {
		t.Errorf("copy_out: %v", out)
	}
	for name, want := range map[string]string{"back/mcp/greeting.txt": "hello\n", "back/mcp/input.txt": "from the host\n"} {
		if b, err := os.ReadFile(filepath.Join(root, name)); err != nil || string(b) != want {
			t.Errorf("%s after copy_in and copy_out: %q, %v", name, b, err)
		}
	}
	deleted := srv.tool(adopt, "delete_sandbox", "sandbox=demo")
	if deleted["deleted"] != "demo" || deleted["gone"] != true {
		t.Fatalf("delete_sandbox: %v", deleted)
	}
	eventually(t, time.Minute, "nothing left in "+ns, func() bool { return len(objectsLeft(t, ns)) == 0 })

	log, err := os.ReadFile(srv.log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `msg="created sandbox" sandbox=demo`) || !strings.Contains(string(log), `msg="deleted sandbox" sandbox=demo`) {
		t.Errorf("the server log misses the create or the delete:\n%s", log)
	}
	if strings.Contains(string(log), secret) || strings.Contains(srv.transcript.String(), secret) {
		t.Fatalf("the secret is in a tool result or the server's log:\n%s\n%s", srv.transcript.String(), log)
	}
}

// A session that ends deletes what it made: the Inspector disconnects
// after one call, and the sandbox it created is gone with everything it
// owned. A tool error reaches the client as a tool error.
func TestMCPInspectorSessionCleansUp(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	srv := newInspectorServer(t, ns)
	created := srv.tool(nil, "create_sandbox", "name=brief")
	if created["name"] != "brief" {
		t.Fatalf("create_sandbox: %v", created)
	}
	assertNothingLeftEventually(t, ns)

	out := srv.call(nil, "tools/call", "--tool-name", "exec", "--tool-arg", "sandbox=brief", "--tool-arg", `command=["true"]`)
	var res struct {
		IsError bool
		Content []struct{ Text string }
	}
	if err := json.Unmarshal(out, &res); err != nil || !res.IsError || len(res.Content) == 0 ||
		!strings.Contains(res.Content[0].Text, `sandbox "brief" is not one this server may use`) {
		t.Fatalf("exec in a sandbox of another session: %s", out)
	}
}

func assertNothingLeftEventually(t *testing.T, ns string) {
	t.Helper()
	eventually(t, time.Minute, "nothing left in "+ns, func() bool { return len(objectsLeft(t, ns)) == 0 })
}

// mcpSession runs `kubectl agentkernel mcp` and connects the Go SDK's
// client to it over its stdin and stdout. The test owns the process.
func mcpSession(t *testing.T, args ...string) (*sdk.ClientSession, *exec.Cmd, *testexec.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(env.binary, append([]string{"mcp", "--kubeconfig", env.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	stderr := &testexec.SyncBuffer{}
	cmd.Stderr = stderr
	stdin, stdout := startOverStdio(t, cmd)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	session, err := sdk.NewClient(&sdk.Implementation{Name: "e2e"}, nil).Connect(context.Background(), &sdk.IOTransport{Reader: stdout, Writer: stdin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return session, cmd, stderr
}

// startOverStdio starts cmd with pipes to its stdin and from its stdout:
// how an MCP client talks to a server.
func startOverStdio(t *testing.T, cmd *exec.Cmd) (io.WriteCloser, io.ReadCloser) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return stdin, stdout
}

func callTool(t *testing.T, s *sdk.ClientSession, name string, args map[string]any) *sdk.CallToolResult {
	t.Helper()
	res, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// SIGTERM (a client or a supervisor stopping the server) deletes what the
// server made, and the server exits as a shell reports SIGTERM.
func TestMCPSigtermCleansUp(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	session, cmd, stderr := mcpSession(t, "-n", ns, "--network", "open")
	defer session.Close()
	for _, name := range []string{"one", "two"} {
		if res := callTool(t, session, "create_sandbox", map[string]any{"name": name}); res.IsError {
			t.Fatalf("create_sandbox: %v", res.Content)
		}
	}
	if got := len(objectsLeft(t, ns)); got != 2 {
		t.Fatalf("%d objects, want the 2 pods", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != 143 {
		t.Errorf("exit after SIGTERM: %v (want 143)\n%s", err, stderr)
	}
	// The server waited until its sandboxes were gone before it exited.
	assertNothingLeft(t, ns)
	if strings.Count(stderr.String(), `msg="deleted sandbox"`) != 2 {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// Many creates at once through one server, against the real API server:
// never more than --max-sandboxes, and the ones refused leave nothing.
func TestMCPConcurrentCreatesRespectTheLimit(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	session, _, stderr := mcpSession(t, "-n", ns, "--network", "open", "--max-sandboxes", "3")
	var wg sync.WaitGroup
	results := make([]*sdk.CallToolResult, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = callTool(t, session, "create_sandbox", map[string]any{"name": fmt.Sprintf("c%d", i)})
		}()
	}
	wg.Wait()
	won := 0
	for _, r := range results {
		if !r.IsError {
			won++
		} else if text := r.Content[0].(*sdk.TextContent).Text; !strings.Contains(text, "--max-sandboxes") {
			t.Errorf("unexpected error: %s", text)
		}
	}
	pods, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if won != 3 || len(pods.Items) != 3 {
		t.Fatalf("%d creates succeeded, %d pods; want 3 and 3\n%s", won, len(pods.Items), stderr)
	}
	if err := session.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	assertNothingLeftEventually(t, ns)
}

// Many commands through one server into one sandbox, one after another
// (through its warm shell) and at once (the shell is busy: the others
// stream on their own): every result is its own command's.
func TestMCPExecRoundTrips(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	session, _, stderr := mcpSession(t, "-n", ns, "--network", "open")
	defer session.Close()
	if res := callTool(t, session, "create_sandbox", map[string]any{"name": "busy"}); res.IsError {
		t.Fatalf("create_sandbox: %v", res.Content)
	}
	check := func(i int) {
		res := callTool(t, session, "exec", map[string]any{"sandbox": "busy", "shell": fmt.Sprintf("echo out %d; echo err %d >&2; exit %d", i, i, i%256)})
		b, _ := json.Marshal(res.StructuredContent)
		var out struct {
			ExitCode       int `json:"exit_code"`
			Stdout, Stderr string
		}
		if err := json.Unmarshal(b, &out); err != nil || res.IsError {
			t.Errorf("exec %d: %s %v", i, b, err)
			return
		}
		if out.ExitCode != i%256 || out.Stdout != fmt.Sprintf("out %d\n", i) || out.Stderr != fmt.Sprintf("err %d\n", i) {
			t.Errorf("exec %d got another's result: %s", i, b)
		}
	}
	for i := range 100 {
		check(i)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				check(1000 + g*10 + j)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.Logf("server log:\n%s", stderr)
	}
}

// The persistence tools, driven by a client nobody here wrote (the MCP
// Inspector), one session per call as an agent's restarts would be: a
// persistent sandbox kept beyond its session, suspended, auto-resumed by
// an exec, suspended again, resumed by the tool, listed and deleted.
func TestMCPInspectorPersistence(t *testing.T) {
	requireSimulated(t)
	simulateCSI(t)
	ns := newNamespace(t)
	srv := newInspectorServer(t, ns, "--persist-max", "2Gi", "--persist-storage-class", csiClass)
	created := srv.tool([]string{"--keep"}, "create_sandbox", "name=kept", "persist=true", "workspace_size=1Gi", "storage_class="+csiClass)
	if created["persistent"] != true || created["workspace_size"] != "1Gi" || created["storage_class"] != csiClass {
		t.Fatalf("create_sandbox: %v", created)
	}
	adopt := []string{"--adopt", "kept"}
	if s := srv.tool(adopt, "suspend_sandbox", "sandbox=kept"); s["suspended"] != "kept" || s["already"] != false || s["why"] != "suspended" {
		t.Fatalf("suspend_sandbox: %v", s)
	}
	if _, ok := getSandboxPod(t, ns, "kept"); ok {
		t.Fatal("suspended, but its Pod is there")
	}
	list := srv.tool(adopt, "list_sandboxes")
	boxes, _ := list["sandboxes"].([]any)
	if len(boxes) != 1 || boxes[0].(map[string]any)["status"] != "Suspended" || boxes[0].(map[string]any)["suspended_why"] != "suspended" {
		t.Fatalf("list_sandboxes does not show the suspended sandbox: %v", list)
	}
	ran := srv.tool(adopt, "exec", "sandbox=kept", `command=["echo","awake"]`)
	if ran["stdout"] != "awake\n" || !strings.Contains(fmt.Sprint(ran["resumed"]), "suspended") {
		t.Fatalf("exec on a suspended sandbox: %v", ran)
	}
	srv.tool(adopt, "suspend_sandbox", "sandbox=kept")
	resumed := srv.tool(adopt, "resume_sandbox", "sandbox=kept")
	if resumed["resumed"] == "" || resumed["sandbox"].(map[string]any)["usable"] != true {
		t.Fatalf("resume_sandbox: %v", resumed)
	}
	if d := srv.tool(adopt, "delete_sandbox", "sandbox=kept"); d["deleted"] != "kept" {
		t.Fatalf("delete_sandbox: %v", d)
	}
	eventually(t, time.Minute, "the workspace gone", func() bool {
		_, ok := getWorkspace(t, ns, "kept")
		return !ok
	})
}
