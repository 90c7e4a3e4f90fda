package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/agentmock"
)

// Claude Code itself, the published CLI unmodified, is the MCP client: set
// up as the README tells users (an "mcpServers" entry running `kubectl
// agentkernel mcp`), and driven by the scripted model (test/agentmock) to
// create a sandbox, write a file in it, run a command there and delete it.
// It runs on this host, as on a user's machine; the sandbox is in the
// cluster, and the test watches the cluster to see it come and go.
func TestClaudeCodeDrivesTheMCPServer(t *testing.T) {
	requireCluster(t)
	claude := claudeCLI(t)
	ns := newNamespace(t)
	const name = "from-claude"

	script := agentmock.MCPScript(name, workPath(ns, "notes"))
	mock := agentmock.New(agentmock.Options{Claude: script})
	api := httptest.NewServer(mock)
	t.Cleanup(api.Close)

	dir := t.TempDir()
	home, work := filepath.Join(dir, "home"), filepath.Join(dir, "work")
	for _, d := range []string{home, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	serverLog := filepath.Join(dir, "mcp-server.log")
	config, _ := json.Marshal(map[string]any{"mcpServers": map[string]any{"agentkernel": map[string]any{
		"command": "sh",
		"args":    []string{"-c", `log=$1; shift; exec "$@" 2>>"$log"`, "sh", serverLog, env.binary, "mcp", "--kubeconfig", env.kubeconfig, "-n", ns},
	}}})
	configFile := filepath.Join(dir, "mcp.json")
	if err := os.WriteFile(configFile, config, 0o600); err != nil {
		t.Fatal(err)
	}

	seen := watchSandboxPod(t, ns, name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, claude, "-p", "Make a sandbox, leave a note in it, read it back, and clean up.",
		"--output-format", "text", "--mcp-config", configFile, "--strict-mcp-config",
		"--allowedTools", strings.Join(agentmock.MCPTools(), ","))
	cmd.Dir = work
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "LANG=C.UTF-8", "TERM=dumb",
		"ANTHROPIC_BASE_URL=" + api.URL, "ANTHROPIC_API_KEY=fake-anthropic-key",
		// Offer the MCP tools inline from the first request: by default
		// Claude Code defers them behind its ToolSearch tool
		// (test/agentmock/README.md).
		"ENABLE_TOOL_SEARCH=false",
		"CLAUDE_CODE_MAX_RETRIES=0",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1", "DISABLE_ERROR_REPORTING=1",
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	serverOut, _ := os.ReadFile(serverLog)
	t.Logf("claude: %v\nstdout:\n%s\nstderr:\n%s\nMCP server's log:\n%s", err, stdout.String(), stderr.String(), serverOut)
	for _, r := range mock.Requests() {
		t.Logf("mock saw %s %s step=%d status=%d tools=%d", r.Method, r.Path, r.Step, r.Status, len(r.Tools))
	}

	if err := mock.Err(); err != nil {
		t.Errorf("the conversation went wrong: %v", err)
	}
	if err != nil {
		t.Errorf("claude: %v, want exit 0", err)
	}
	if steps := len(script); mock.StepsPlayed(agentmock.Anthropic) != steps-1 {
		t.Errorf("the mock played steps up to %d, want all up to %d", mock.StepsPlayed(agentmock.Anthropic), steps-1)
	}
	if !strings.Contains(stdout.String(), agentmock.MCPFinalText) {
		t.Errorf("Claude Code's answer lacks the script's final text")
	}
	// The cluster saw the sandbox made by the server and then deleted.
	got := seen()
	if len(got) < 2 || got[0] != watch.Added || got[len(got)-1] != watch.Deleted {
		t.Errorf("the sandbox's Pod went through %v, want Added … Deleted", got)
	}
	assertNothingLeft(t, ns)
}

// claudeCLI is the pinned Claude Code hack/agent-clis.sh installed.
func claudeCLI(t *testing.T) string {
	t.Helper()
	dir, err := agentmock.CLIDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "claude")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Claude Code is not installed at %s: the e2e tier installs it with hack/agent-clis.sh", path)
	}
	return path
}

// watchSandboxPod records the events of the sandbox's Pod from now on;
// the function it returns stops the watch and gives them.
func watchSandboxPod(t *testing.T, ns, name string) func() []watch.EventType {
	t.Helper()
	w, err := env.cs.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=" + sandbox.PodName(name)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []watch.EventType
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			mu.Lock()
			if len(events) == 0 || events[len(events)-1] != ev.Type {
				events = append(events, ev.Type)
			}
			mu.Unlock()
		}
	}()
	stop := sync.OnceFunc(func() { w.Stop(); <-done })
	t.Cleanup(stop)
	return func() []watch.EventType {
		// A Deleted event may trail the tool's answer by a moment.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			mu.Lock()
			last := len(events) > 0 && events[len(events)-1] == watch.Deleted
			mu.Unlock()
			if last {
				break
			}
		}
		// Read the events before stopping: stopping the watch can itself
		// put an ERROR event on the channel (CI saw Deleted, then Error).
		mu.Lock()
		got := append([]watch.EventType(nil), events...)
		mu.Unlock()
		stop()
		return got
	}
}
