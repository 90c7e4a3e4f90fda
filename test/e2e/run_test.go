package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// session is a plugin process a test talks to while it runs.
type session struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr []string // lines so far
	done   chan struct{}
	err    error
}

// startPlugin starts the plugin and collects its stdout and stderr lines.
func startPlugin(t *testing.T, args ...string) *session {
	t.Helper()
	s := &session{done: make(chan struct{})}
	s.cmd = exec.Command(env.binary, append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
	s.cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	s.cmd.Stdout = &lockedWriter{mu: &s.mu, w: &s.stdout}
	errPipe, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			s.mu.Lock()
			s.stderr = append(s.stderr, sc.Text())
			s.mu.Unlock()
		}
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (s *session) output() (stdout, stderr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stdout.String(), strings.Join(s.stderr, "\n")
}

// waitFor waits until stdout or stderr contains want (or the process ends).
func (s *session) waitFor(t *testing.T, want string) {
	t.Helper()
	eventually(t, 2*time.Minute, "the plugin to print "+want, func() bool {
		out, errOut := s.output()
		select {
		case <-s.done:
			if !strings.Contains(out+errOut, want) {
				t.Fatalf("the plugin ended before printing %q:\nstdout: %s\nstderr: %s", want, out, errOut)
			}
		default:
		}
		return strings.Contains(out, want) || strings.Contains(errOut, want)
	})
}

// exit waits for the process and returns its exit code.
func (s *session) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(3 * time.Minute):
		_ = s.cmd.Process.Kill()
		t.Fatal("the plugin did not end")
	}
	if s.err == nil {
		return 0
	}
	ee, ok := s.err.(*exec.ExitError)
	if !ok {
		t.Fatal(s.err)
	}
	return ee.ExitCode()
}

// eventuallyNothingLeft: run waits until the Pod is gone; its Secret and
// NetworkPolicy follow through the garbage collector.
func eventuallyNothingLeft(t *testing.T, ns string) {
	t.Helper()
	pods, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) > 0 {
		t.Fatalf("run returned, but pod %s is still there", pods.Items[0].Name)
	}
	eventually(t, time.Minute, "the garbage collector to remove the sandbox's Secret and NetworkPolicy", func() bool {
		return len(objectsLeft(t, ns)) == 0
	})
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	return dir
}

func TestRunCopiesInRunsCopiesOutAndDeletes(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	repo := writeTree(t, map[string]string{"a.txt": "from the repo\n", "src/b.txt": "b\n"})
	in := workPath(ns, "repo")
	out := t.TempDir()
	r := plugin(t, "", "run", "demo", "-n", ns, "--copy-in", repo+":"+in, "--copy-out", in+":"+out, "-w", in,
		"--", "sh", "-c", "cat a.txt src/b.txt > result.txt; echo ran in $(pwd)")
	if r.code != 0 {
		t.Fatalf("run:\n%s", r)
	}
	if r.stdout != "ran in "+in+"\n" {
		t.Fatalf("stdout is more (or less) than the command's output: %q", r.stdout)
	}
	for _, step := range []string{"creating sandbox/demo", "copying " + repo + " into " + in, "running: sh -c", "copying " + in + " out to " + out, "deleting sandbox/demo"} {
		if !strings.Contains(r.stderr, step) {
			t.Errorf("stderr lacks %q:\n%s", step, r.stderr)
		}
	}
	got, err := os.ReadFile(filepath.Join(out, "repo", "result.txt"))
	if err != nil || string(got) != "from the repo\nb\n" {
		t.Fatalf("copied out: %q %v", got, err)
	}
	eventuallyNothingLeft(t, ns)

	// -q: the command's output and nothing else.
	r = plugin(t, "", "run", "-q", "-n", ns, "--", "echo", "quiet")
	if r.code != 0 || r.stdout != "quiet\n" || r.stderr != "" {
		t.Fatalf("run -q:\n%s", r)
	}
	eventuallyNothingLeft(t, ns)
}

// An agent's partial work is still wanted: copied out after a failure, and
// the command's exit code is kept.
func TestRunCopiesOutAfterAFailingCommand(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	work := workPath(ns, "w")
	out := t.TempDir()
	r := plugin(t, "", "run", "-n", ns, "--copy-out", work+":"+out,
		"--", "sh", "-c", `mkdir -p "$1" && echo partial > "$1/notes.txt"; exit 3`, "sh", work)
	if r.code != 3 {
		t.Fatalf("want the command's exit code 3:\n%s", r)
	}
	if got, err := os.ReadFile(filepath.Join(out, "w", "notes.txt")); err != nil || string(got) != "partial\n" {
		t.Fatalf("partial work: %q %v\n%s", got, err, r)
	}
	eventuallyNothingLeft(t, ns)

	// The command ran, copying out failed: the command's code stays, and
	// the error says what failed.
	r = plugin(t, "", "run", "-n", ns, "--copy-out", workPath(ns, "missing")+":"+out, "--", "sh", "-c", "exit 4")
	if r.code != 4 || !strings.Contains(r.stderr, "error: --copy-out") || !strings.Contains(r.stderr, "no such file in the sandbox") {
		t.Fatalf("failing copy-out after a failing command:\n%s", r)
	}
	// ... and when the command succeeded, the run failed: 125.
	r = plugin(t, "", "run", "-n", ns, "--copy-out", workPath(ns, "missing")+":"+out, "--", "true")
	if r.code != 125 {
		t.Fatalf("failing copy-out after a good command: want 125:\n%s", r)
	}
	eventuallyNothingLeft(t, ns)
}

func TestRunKeepKeeps(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	r := mustPlugin(t, "", "run", "kept", "-n", ns, "--keep", "--", "true")
	if !strings.Contains(r.stderr, "sandbox/kept kept") {
		t.Fatalf("stderr: %s", r.stderr)
	}
	if r := mustPlugin(t, "", "exec", "kept", "-n", ns, "--", "echo", "still here"); r.stdout != "still here\n" {
		t.Fatalf("the kept sandbox: %s", r)
	}
	// A failing command with --keep keeps it too.
	if r := plugin(t, "", "run", "kept2", "-n", ns, "--keep", "--", "false"); r.code != 1 {
		t.Fatalf("%s", r)
	}
	mustPlugin(t, "", "delete", "kept", "kept2", "-n", ns)
	assertNothingLeft(t, ns)
}

// The plugin's own failures exit 125 and leave nothing behind.
func TestRunPluginFailuresAre125(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	events := recordPodEvents(t, ns)
	for name, args := range map[string][]string{
		"unschedulable":    {"--node-selector", "e2e.agentkernel/no-such-node=true", "--", "true"},
		"missing copy-in":  {"--copy-in", "/no/such/dir", "--", "true"},
		"no command":       {"demo"},
		"unknown flag":     {"--no-such-flag", "--", "true"},
		"bad memory":       {"--memory", "lots", "--", "true"},
		"taken name (pod)": {"e2e-taken", "--", "true"},
	} {
		if name == "taken name (pod)" {
			createSandbox(t, ns, "e2e-taken")
		}
		r := plugin(t, "", append([]string{"run", "-n", ns}, args...)...)
		if r.code != 125 || !strings.Contains(r.stderr, "error: ") {
			t.Errorf("%s: want exit 125 and an error:\n%s", name, r)
		}
		if name == "taken name (pod)" {
			mustPlugin(t, "", "delete", "e2e-taken", "-n", ns)
		}
		eventuallyNothingLeft(t, ns)
	}
	// Only the unschedulable run and the taken name ever made a Pod.
	if n := len(events.ungatedPods()); n > 2 {
		t.Errorf("%d pods were started; bad input must fail before anything is made", n)
	}
}

// A credential a preset needs, missing from the environment: a clear error
// naming it, and not one object made.
func TestRunMissingCredentialCreatesNothing(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	events := recordPodEvents(t, ns)
	for _, v := range []string{"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"} {
		t.Setenv(v, "")
		_ = os.Unsetenv(v) // t.Setenv restores it afterwards
	}
	r := plugin(t, "", "run", "-n", ns, "--agent", "claude")
	if r.code != 125 || !strings.Contains(r.stderr, "--agent claude needs one of ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN in your environment") {
		t.Fatalf("%s", r)
	}
	presets := writeTree(t, map[string]string{"agents.yaml": "agents:\n  e2e:\n    image: " + sandbox.DefaultImage + "\n    command: [env]\n    credentials:\n      required: [E2E_AGENT_TOKEN]\n"})
	r = plugin(t, "", "create", "x", "-n", ns, "--agents-file", filepath.Join(presets, "agents.yaml"), "--agent", "e2e")
	wantError(t, r, "--agent e2e needs E2E_AGENT_TOKEN in your environment")
	time.Sleep(time.Second) // let any event arrive that should not have happened
	if pods := events.ungatedPods(); len(pods) > 0 {
		t.Fatalf("a pod was made: %v", pods)
	}
	assertNothingLeft(t, ns)
}

// A preset's credential goes from the caller's environment into the
// sandbox's Secret, exactly like --secret-env, and nowhere else.
func TestRunAgentPresetCredentialsGoIntoTheSecret(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	presets := writeTree(t, map[string]string{"agents.yaml": `agents:
  e2e:
    image: ` + sandbox.DefaultImage + `
    install: echo installing the agent
    command: [sh, -c, "echo agent ran"]
    credentials:
      required: [E2E_AGENT_TOKEN]
    env: {E2E_MODE: preset}
`})
	t.Setenv("E2E_AGENT_TOKEN", "sk-e2e-secret-value")
	r := plugin(t, "", "run", "tokened", "-n", ns, "--agents-file", filepath.Join(presets, "agents.yaml"), "--agent", "e2e", "--keep")
	if r.code != 0 || r.stdout != "agent ran\n" || !strings.Contains(r.stderr, "installing e2e in sandbox/tokened") {
		t.Fatalf("%s", r)
	}
	secret, err := env.cs.CoreV1().Secrets(ns).Get(context.Background(), "agentkernel-tokened-env", metav1.GetOptions{})
	if err != nil || string(secret.Data["E2E_AGENT_TOKEN"]) != "sk-e2e-secret-value" {
		t.Fatalf("the Secret: %v %v", err, secret)
	}
	pod, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), "agentkernel-tokened", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if spec := pod.String(); strings.Contains(spec, "sk-e2e-secret-value") || !strings.Contains(spec, "E2E_MODE") {
		t.Fatalf("the Pod spec holds the value, or lacks the preset's env: %s", spec)
	}
	if strings.Contains(r.stderr+r.stdout, "sk-e2e-secret-value") {
		t.Fatal("the credential was printed")
	}
	mustPlugin(t, "", "delete", "tokened", "-n", ns)
}

// Ctrl-C in every phase of a run: 130, "interrupted", and nothing left.
func TestRunInterruptedInEachPhaseLeavesNothing(t *testing.T) {
	requireSimulated(t) // the hold label keeps a pod from ever starting
	ns := newNamespace(t)
	// The simulated node's /workspace is one tmpfs for every sandbox: free
	// what the interrupted copies left there.
	t.Cleanup(func() {
		if p, err := env.cluster.SandboxPath(workPath(ns, "")); err == nil {
			_ = os.RemoveAll(p)
		}
	})
	big := filepath.Join(t.TempDir(), "big.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(400 << 20); err != nil { // sparse here, 400 MiB of tar in flight
		t.Fatal(err)
	}
	f.Close()
	work := workPath(ns, "out")
	phases := []struct {
		name  string
		args  []string
		until string // what the plugin prints once the phase is under way
		check func(t *testing.T, s *session)
	}{
		{"create", []string{"--label", localcluster.HoldLabel + "=true", "--", "echo", "CMD-RAN"}, "creating sandbox/", nil},
		{"copy in", []string{"--copy-in", big + ":" + workPath(ns, "in/"), "--", "echo", "CMD-RAN"}, "copying " + big, nil},
		{"command", []string{"--", "sh", "-c", "echo CMD-STARTED; sleep 300"}, "CMD-STARTED", nil},
		{"copy out", []string{"--copy-out", work + ":" + t.TempDir(), "--", "sh", "-c", `mkdir -p "$1" && head -c 419430400 /dev/zero > "$1/big"`, "sh", work}, "out to", nil},
	}
	for _, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			s := startPlugin(t, append([]string{"run", "-n", ns}, ph.args...)...)
			s.waitFor(t, ph.until)
			if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			code := s.exit(t)
			out, errOut := s.output()
			if code != 130 || !strings.Contains(errOut, "interrupted by SIGINT") {
				t.Fatalf("exit %d, want 130:\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if strings.Contains(out, "CMD-RAN") {
				t.Fatalf("the command ran although the run was interrupted before it: %s", out)
			}
			if ph.name != "create" && !strings.Contains(errOut, "deleting sandbox/") {
				t.Errorf("no deleting step:\n%s", errOut)
			}
			eventuallyNothingLeft(t, ns)
		})
	}

	// SIGTERM while the command runs: 143.
	s := startPlugin(t, "run", "-n", ns, "--", "sh", "-c", "echo CMD-STARTED; sleep 300")
	s.waitFor(t, "CMD-STARTED")
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.exit(t); code != 143 {
		_, errOut := s.output()
		t.Fatalf("SIGTERM: exit %d\n%s", code, errOut)
	}
	eventuallyNothingLeft(t, ns)
}

func TestAgentsListsEmbeddedAndUserPresets(t *testing.T) {
	requireCluster(t) // only for the binary; agents needs no cluster
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	r := mustPlugin(t, "", "agents")
	for _, name := range []string{"claude", "codex", "gemini", "aider", "opencode", "goose"} {
		if !strings.Contains(r.stdout, name) || !strings.Contains(r.stdout, "embedded") {
			t.Fatalf("agents lacks %s:\n%s", name, r.stdout)
		}
	}
	file := filepath.Join(config, "agentkernel", "agents.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("agents:\n  mine:\n    description: my agent\n    image: busybox\n  claude:\n    memory: 8Gi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = mustPlugin(t, "", "agents")
	if !strings.Contains(r.stdout, "mine") || !strings.Contains(r.stdout, "my agent") || !strings.Contains(r.stdout, "embedded, overridden by "+file) {
		t.Fatalf("the user's file is not listed:\n%s", r.stdout)
	}
	if err := os.WriteFile(file, []byte("agents:\n  claude:\n    memory: 8GB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantError(t, plugin(t, "", "agents"), file+`:3: agents.claude.memory: "8GB" is not a valid quantity`)
	// A broken user file stops --agent too, before any cluster call.
	wantError(t, plugin(t, "", "run", "--agent", "claude"), file+":3: agents.claude.memory")
}
