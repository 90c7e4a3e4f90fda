//go:build linux

package agentmock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The published agent CLIs, unmodified, against the mock: the SSE framing,
// tool calls and tool results as clients nobody here wrote parse and send
// them. They run on this host, so every tool call the scripts make stays
// in the test's temporary repository.

// cliDir is where hack/agent-clis.sh installs the CLIs (CLIDir).
func cliDir(t *testing.T) string {
	t.Helper()
	dir, err := CLIDir()
	if err != nil {
		t.Skip(err)
	}
	return dir
}

// needCLI returns the path of an installed agent CLI, or skips.
func needCLI(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("the agent CLIs run without -short (the e2e tier)")
	}
	needContainment(t)
	path := filepath.Join(cliDir(t), name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s is not installed at %s: fetch the pinned agent CLIs with hack/agent-clis.sh", name, path)
	}
	return path
}

type cliRun struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// runCLI runs an agent CLI in dir with exactly env (nothing of the test's
// own environment leaks in, so no real key or config is used), contained
// as in a sandbox's container (contain_linux_test.go): it may write only in
// dir's parent (the repository and $HOME) and /tmp.
func runCLI(t *testing.T, dir string, env []string, bin string, args ...string) cliRun {
	t.Helper()
	return runContained(t, dir, []string{filepath.Dir(dir), os.TempDir()}, env, bin, args...)
}

// runContained runs an agent CLI that may write only beneath writable.
func runContained(t *testing.T, dir string, writable, env []string, bin string, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, self, argv := contained(env, writable, bin, args...)
	cmd := exec.CommandContext(ctx, self, argv...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = nil
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", bin, strings.Join(args, " "), err, r.stdout, r.stderr)
	}
	t.Logf("%s exited %d in %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
	return r
}

func serve(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	m := New(opts)
	ts := httptest.NewServer(m)
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		dump := os.Getenv("AGENTMOCK_DUMP") // a directory to keep the bodies in, to read what a CLI sent
		for i, r := range m.Requests() {
			if dump != "" {
				name := filepath.Join(dump, fmt.Sprintf("%s-%02d.json", t.Name(), i))
				if err := os.MkdirAll(filepath.Dir(name), 0o755); err == nil {
					_ = os.WriteFile(name, r.Body, 0o644)
				}
			}
			t.Logf("mock saw %s %s%s api=%s model=%s stream=%v step=%d status=%d body=%dB tools=%v", r.Method, r.Path, query(r.RawQuery), r.API, r.Model, r.Stream, r.Step, r.Status, r.BodySize, r.Tools)
		}
	})
	return m, ts.URL
}

func query(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
}

// repo is a temporary repository holding the scripts' files; home a
// temporary $HOME beside it.
func repo(t *testing.T) (dir, home string) {
	t.Helper()
	base := t.TempDir()
	dir, home = filepath.Join(base, "repo"), filepath.Join(base, "home")
	for _, d := range []string{dir, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteRepo(dir); err != nil {
		t.Fatal(err)
	}
	return dir, home
}

// baseEnv is the environment every CLI gets: a PATH for the tools the
// scripts run, and a $HOME of the test's own.
func baseEnv(home string) []string {
	return []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"LANG=C.UTF-8",
		"TERM=dumb",
	}
}

// claudeEnv is the environment Claude Code needs to talk to the mock at
// baseURL, and nothing else.
func claudeEnv(home, baseURL string) []string {
	return append(baseEnv(home),
		"ANTHROPIC_BASE_URL="+baseURL,
		"ANTHROPIC_API_KEY=fake-anthropic-key",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"DISABLE_AUTOUPDATER=1",
		"DISABLE_TELEMETRY=1",
		"DISABLE_ERROR_REPORTING=1",
	)
}

// claudeArgs: print mode, the tools the script uses allowed by name. In a
// sandbox (UID 1000) --dangerously-skip-permissions does as well; as root,
// as these tests run here, Claude Code refuses it.
func claudeArgs() []string {
	return []string{"-p", "Make greeting.txt greet the agent and run the tests.",
		"--output-format", "text", "--allowedTools", "Read,Edit,Bash(sh test.sh)"}
}

// checkPlayed: the agent went through all steps of the script, made the
// edit, exited 0 with the final text, and sent the fake key on every request
// of the conversation, in header.
func checkPlayed(t *testing.T, m *Server, api string, steps int, r cliRun, dir, header, key string) {
	t.Helper()
	if err := m.Err(); err != nil {
		t.Errorf("the conversation went wrong: %v", err)
	}
	if r.code != 0 {
		t.Errorf("the agent exited %d, want 0", r.code)
	}
	if got := m.StepsPlayed(api); got != steps-1 {
		t.Errorf("the mock played steps up to %d, want all up to %d", got, steps-1)
	}
	checkRepoEdited(t, dir)
	if !strings.Contains(r.stdout, FinalText) {
		t.Errorf("the agent's output lacks the final text %q", FinalText)
	}
	for _, req := range m.Requests() {
		if req.API == api && req.Step >= 0 && req.Header.Get(header) != key {
			t.Errorf("request %s for step %d came with %s %q, want %q", req.Path, req.Step, header, req.Header.Get(header), key)
		}
	}
}

// checkFailed: an API that failed every request made the agent exit
// non-zero saying says, without a step played or the repository touched.
func checkFailed(t *testing.T, m *Server, api string, r cliRun, dir, says string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("the agent exited 0 although every model request failed")
	}
	if !strings.Contains(r.stdout+r.stderr, says) {
		t.Errorf("the agent did not say %q", says)
	}
	if m.StepsPlayed(api) != -1 {
		t.Errorf("the mock played a step although it was to fail every request")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "greeting.txt")); strings.TrimSpace(string(b)) != OldGreeting {
		t.Errorf("greeting.txt changed to %q without a model", b)
	}
}

func checkRepoEdited(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "greeting.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != NewGreeting {
		t.Errorf("greeting.txt says %q, want %q: the agent's edit did not land", got, NewGreeting)
	}
}

func TestClaudeCode(t *testing.T) {
	claude := needCLI(t, "claude")
	dir, home := repo(t)
	m, url := serve(t, Options{Claude: ClaudeScript(dir)})
	r := runCLI(t, dir, claudeEnv(home, url), claude, claudeArgs()...)
	checkPlayed(t, m, Anthropic, len(ClaudeScript(dir)), r, dir, "X-Api-Key", "fake-anthropic-key")
}

// TestClaudeCodeAPIError: an API that answers errors makes Claude Code exit
// non-zero, saying so. Claude Code retries failed requests (401s too) with
// a growing backoff, minutes in all: CLAUDE_CODE_MAX_RETRIES=0 makes the
// first error final.
func TestClaudeCodeAPIError(t *testing.T) {
	claude := needCLI(t, "claude")
	for _, tc := range []struct {
		fail Failure
		says string // what Claude Code tells its user
	}{
		{Failure{Status: http.StatusUnauthorized, Message: "invalid x-api-key"}, "Invalid API key"},
		{Failure{Status: 529, Message: "Overloaded"}, "529 Overloaded"},
		{Failure{Status: http.StatusInternalServerError, Message: "Internal server error"}, "500 Internal server error"},
	} {
		f := tc.fail
		t.Run(strconv.Itoa(f.Status), func(t *testing.T) {
			dir, home := repo(t)
			m, url := serve(t, Options{Claude: ClaudeScript(dir), Fail: &f})
			r := runCLI(t, dir, append(claudeEnv(home, url), "CLAUDE_CODE_MAX_RETRIES=0"), claude, claudeArgs()...)
			checkFailed(t, m, Anthropic, r, dir, tc.says)
			if n := len(m.Requests()); n != 1 {
				t.Errorf("the mock saw %d requests, want 1: CLAUDE_CODE_MAX_RETRIES=0 did not stop the retries", n)
			}
		})
	}
}

// codexEnv is the environment Codex needs, the mock being named by its
// flags (CodexFlags): the fake key. Its state goes to $HOME/.codex.
func codexEnv(home string) []string {
	return append(baseEnv(home), "OPENAI_API_KEY=fake-openai-key")
}

// codexArgs: exec (non-interactive) outside a git repository, with Codex's
// own sandbox off: in a container it cannot work (TestCodexOwnSandbox), and
// the container is the sandbox, what the flag is documented for.
func codexArgs(baseURL string) []string {
	return codexArgsWith(baseURL, []string{"--dangerously-bypass-approvals-and-sandbox"})
}

func codexArgsWith(baseURL string, flags []string) []string {
	args := append([]string{"exec", "--skip-git-repo-check"}, flags...)
	args = append(args, CodexFlags(baseURL+"/v1")...)
	return append(args, "Make greeting.txt greet the agent and run the tests.")
}

func TestCodex(t *testing.T) {
	codex := needCLI(t, "codex")
	dir, home := repo(t)
	m, url := serve(t, Options{Codex: CodexScript()})
	r := runCLI(t, dir, codexEnv(home), codex, codexArgs(url)...)
	checkPlayed(t, m, OpenAI, len(CodexScript()), r, dir, "Authorization", "Bearer fake-openai-key")
}

// TestCodexAPIError: an API that answers errors makes Codex exit non-zero,
// saying the API's message.
func TestCodexAPIError(t *testing.T) {
	codex := needCLI(t, "codex")
	for _, tc := range []struct {
		fail Failure
		says string // what Codex tells its user
	}{
		{Failure{Status: http.StatusUnauthorized, Message: "Incorrect API key provided: fake-ope****-key"}, "Incorrect API key provided"},
		// A server error's own message is replaced by Codex's words.
		{Failure{Status: http.StatusInternalServerError, Message: "The server had an error while processing your request."}, "high demand"},
	} {
		f := tc.fail
		t.Run(strconv.Itoa(f.Status), func(t *testing.T) {
			dir, home := repo(t)
			m, url := serve(t, Options{Codex: CodexScript(), Fail: &f})
			r := runCLI(t, dir, codexEnv(home), codex, codexArgs(url)...)
			checkFailed(t, m, OpenAI, r, dir, tc.says)
		})
	}
}

// TestScriptChecksReachTheAgent: a tool result without what its step wants
// fails the conversation, and the real agent with it, so a test cannot pass
// on a conversation that went wrong.
func TestScriptChecksReachTheAgent(t *testing.T) {
	spoil := func(sc Script) Script {
		sc[len(sc)-2].Want = []string{"test.sh: this is never printed"}
		return sc
	}
	t.Run("claude", func(t *testing.T) {
		claude := needCLI(t, "claude")
		dir, home := repo(t)
		m, url := serve(t, Options{Claude: spoil(ClaudeScript(dir))})
		r := runCLI(t, dir, append(claudeEnv(home, url), "CLAUDE_CODE_MAX_RETRIES=0"), claude, claudeArgs()...)
		checkSpoiled(t, m, r)
	})
	t.Run("codex", func(t *testing.T) {
		codex := needCLI(t, "codex")
		dir, home := repo(t)
		m, url := serve(t, Options{Codex: spoil(CodexScript())})
		r := runCLI(t, dir, codexEnv(home), codex, codexArgs(url)...)
		checkSpoiled(t, m, r)
	})
}

func checkSpoiled(t *testing.T, m *Server, r cliRun) {
	t.Helper()
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "lacks") {
		t.Errorf("the mock's error is %v, want the step whose result lacks what it wants", err)
	}
	if r.code == 0 {
		t.Errorf("the agent exited 0 although the mock failed the conversation")
	}
	if strings.Contains(r.stdout, FinalText) {
		t.Errorf("the agent printed the final text of a conversation that failed")
	}
}

// TestCodexOwnSandbox: Codex's own sandbox (bubblewrap, which needs a user
// namespace) cannot run a command in a container under RuntimeDefault
// seccomp, in either of its modes that restrict the command, the legacy
// Landlock one included (it still wants bubblewrap). This is why the agents
// run with --dangerously-bypass-approvals-and-sandbox; should a Codex
// release manage without, this test fails and says so.
func TestCodexOwnSandbox(t *testing.T) {
	codex := needCLI(t, "codex")
	for _, flags := range [][]string{
		nil, // exec's default: --sandbox read-only
		{"--sandbox", "workspace-write"},
		{"--sandbox", "workspace-write", "--enable", "use_legacy_landlock"},
	} {
		name := strings.Join(flags, " ")
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			dir, home := repo(t)
			m, url := serve(t, Options{Codex: CodexScript()})
			r := runCLI(t, dir, codexEnv(home), codex, codexArgsWith(url, flags)...)
			err := m.Err()
			if err == nil || !strings.Contains(err.Error(), "step 0") || !strings.Contains(err.Error(), "bubblewrap") && !strings.Contains(err.Error(), "bwrap") {
				t.Errorf("the mock's error is %v, want the first command failing for want of bubblewrap's namespaces: Codex's sandbox may work in a container now (exit %d)", err, r.code)
			}
			if r.code == 0 {
				t.Errorf("codex exited 0")
			}
		})
	}
}
