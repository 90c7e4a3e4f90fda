package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	restclient "k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// stepLog is the order in which a run touched the cluster and the sandbox.
type stepLog struct {
	mu    sync.Mutex
	steps []string
}

func (l *stepLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.steps = append(l.steps, s)
}

func (l *stepLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.steps...)
}

// runCluster is the one fake API server (internal/fakecluster) on which a
// sandbox Pod starts as soon as its scheduling gate is lifted, and which
// logs the steps of a run.
func runCluster(log *stepLog) *fake.Clientset {
	cs := fakecluster.New()
	fakecluster.StartWhenUngated(cs, func(pod *corev1.Pod) {
		pod.Status = corev1.PodStatus{
			Phase:             corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: sandbox.ContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		}
		log.add("start pod")
	})
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		log.add("create " + a.GetResource().Resource)
		return false, nil, nil
	})
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		if pa.GetPatchType() == types.JSONPatchType {
			return false, nil, nil // lifts the gate: the fake starts the pod
		}
		// A claim's merge patch, or the one that marks it complete once
		// its environment is delivered: the fake applies either.
		if strings.Contains(string(pa.GetPatch()), `"`+sandbox.AnnotationClaimState+`":"`+sandbox.ClaimComplete+`"`) {
			log.add("complete the claim")
		} else {
			log.add("claim pod")
		}
		return false, nil, nil
	})
	cs.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		log.add("delete " + a.GetResource().Resource)
		return false, nil, nil
	})
	return cs
}

// sandboxPlayer plays the sandbox's side of every exec: the copies' tar,
// an install step, the command.
type sandboxPlayer struct {
	t          *testing.T
	log        *stepLog
	code       int    // the command's exit status
	failCopyIn bool   // the sandbox's tar fails
	onCommand  func() // called when the command starts
	block      bool   // the command runs until the stream is cancelled
	stdins     map[string]string
	sourced    int      // execs that sourced a claim's environment file
	urls       []string // every exec request
	mu         sync.Mutex
}

func (p *sandboxPlayer) Execute(u *url.URL, c *restclient.Config, stdin io.Reader, stdout, stderr io.Writer, tty bool, q remotecommand.TerminalSizeQueue) error {
	return p.ExecuteWithContext(context.Background(), u, c, stdin, stdout, stderr, tty, q)
}

func (p *sandboxPlayer) ExecuteWithContext(ctx context.Context, u *url.URL, _ *restclient.Config, stdin io.Reader, stdout, _ io.Writer, _ bool, _ remotecommand.TerminalSizeQueue) error {
	p.mu.Lock()
	p.urls = append(p.urls, u.String())
	p.mu.Unlock()
	cmd := u.Query()["command"]
	if len(cmd) > 4 && cmd[0] == "sh" && cmd[1] == "-c" && strings.HasSuffix(cmd[3], ".env") && strings.HasSuffix(cmd[2], `exec "$@"`) {
		p.mu.Lock()
		p.sourced++ // PodExec's wrapper that sources a claim's environment
		p.mu.Unlock()
		cmd = cmd[4:]
	}
	if len(cmd) > 3 && cmd[0] == "sh" && cmd[1] == "-c" && cmd[3] == "agentkernel-claim" {
		p.log.add("deliver the claim's environment")
		b, _ := io.ReadAll(stdin)
		p.mu.Lock()
		p.stdins["claim"] = string(b)
		p.mu.Unlock()
		return nil
	}
	if len(cmd) >= 3 && cmd[0] == "sh" && cmd[1] == "-c" {
		switch script := cmd[2]; {
		case strings.Contains(script, "tar -xf -"):
			p.log.add("copy in " + cmd[4])
			b, _ := io.ReadAll(stdin)
			p.mu.Lock()
			p.stdins[cmd[4]] = string(b)
			p.mu.Unlock()
			if p.failCopyIn {
				return utilexec.CodeExitError{Err: errors.New("tar failed"), Code: 2}
			}
			return nil
		case strings.Contains(script, "tar -cf -"):
			p.log.add("copy out " + cmd[4] + cmd[5][2:])
			_, _ = stdout.Write(tarOf(p.t, cmd[5]+"/", "", cmd[5]+"/result.txt", "42"))
			return nil
		case reflect.DeepEqual(cmd, sandbox.StartCommand):
			p.log.add("start main process")
			return nil
		case strings.Contains(strings.Join(cmd, " "), `cd -- "$0"`):
			cmd = cmd[4:] // the working directory's wrapper
		default:
			p.log.add("install: " + script)
			return nil
		}
	}
	p.log.add("command " + strings.Join(cmd, " "))
	if p.onCommand != nil {
		p.onCommand()
	}
	_, _ = io.WriteString(stdout, "agent output\n")
	if p.block {
		<-ctx.Done()
		return ctx.Err()
	}
	if p.code != 0 {
		return utilexec.CodeExitError{Err: errors.New("exit"), Code: p.code}
	}
	return nil
}

type runResult struct {
	stdout, stderr string
	err            error
	secret         *corev1.Secret
	pod            *corev1.Pod
}

// runRun drives the real run command against the fake cluster; it returns
// what a user would see and what the cluster was sent.
func runRun(t *testing.T, ctx context.Context, log *stepLog, player *sandboxPlayer, env map[string]string, args ...string) runResult {
	t.Helper()
	return runRunOn(t, ctx, runCluster(log), player, env, args...)
}

// runRunOn is runRun on a fake cluster made by runCluster (and maybe
// filled since).
func runRunOn(t *testing.T, ctx context.Context, cs *fake.Clientset, player *sandboxPlayer, env map[string]string, args ...string) runResult {
	t.Helper()
	presets := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(presets, []byte(clitest.Presets), 0o644); err != nil {
		t.Fatal(err)
	}
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewRunOptions(streams)
	o.Sandbox.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	o.Executor = player
	o.DeleteTimeout = 30 * time.Second
	tf := clitest.Factory(t)
	cmd := newCmdRun(tf, o)
	res := runResult{}
	if err := cmd.ParseFlags(append([]string{"--agents-file", presets}, args...)); err != nil {
		res.err = err
		return res
	}
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch obj := a.(k8stesting.CreateAction).GetObject().(type) {
		case *corev1.Secret:
			res.secret = obj.DeepCopy()
		case *corev1.Pod:
			res.pod = obj.DeepCopy()
		}
		return false, nil, nil
	})
	res.err = func() error {
		if err := o.Complete(tf, cmd, cmd.Flags().Args()); err != nil {
			return o.failed(ctx, err)
		}
		// Exec URLs are built by the factory's REST client; the API is the fake's.
		o.Clientset = withREST{cs, o.Clientset.CoreV1().RESTClient()}
		if err := o.Validate(); err != nil {
			return o.failed(ctx, err)
		}
		return o.Run(ctx)
	}()
	res.err = cli.FlagWordsError(res.err) // as the command's RunE says it
	res.stdout, res.stderr = out.String(), errOut.String()
	return res
}

// withREST is a fake clientset whose core REST client is a real one, for
// the exec URLs (a fake clientset has none).
type withREST struct {
	*fake.Clientset
	rest restclient.Interface
}

func (w withREST) CoreV1() corev1client.CoreV1Interface {
	return coreREST{w.Clientset.CoreV1(), w.rest}
}

type coreREST struct {
	corev1client.CoreV1Interface
	rest restclient.Interface
}

func (c coreREST) RESTClient() restclient.Interface { return c.rest }

func newPlayer(t *testing.T, log *stepLog) *sandboxPlayer {
	return &sandboxPlayer{t: t, log: log, stdins: map[string]string{}}
}

func TestRunStepsInOrder(t *testing.T) {
	repo := t.TempDir()
	writeTestFile(t, filepath.Join(repo, "main.go"), "package main\n")
	out := t.TempDir()
	log := &stepLog{}
	p := newPlayer(t, log)
	r := runRun(t, context.Background(), log, p, map[string]string{"TOOL_KEY": "sk-secret-value"},
		"--agent", "tool", "--copy-in", repo+":/workspace/repo", "--copy-out", "/workspace/out:"+out, "demo")
	if r.err != nil {
		t.Fatalf("%v\nstderr: %s", r.err, r.stderr)
	}
	want := []string{
		"create selfsubjectreviews", // who creates it, for the provenance annotations
		"create pods", "create secrets", "create networkpolicies", "start pod",
		"install: install-the-tool",
		"copy in /workspace/repo",
		"command tool --go",
		"copy out /workspace/out",
		"delete pods",
	}
	if got := log.get(); !reflect.DeepEqual(got, want) {
		t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r.stdout != "agent output\n" {
		t.Errorf("stdout carries more than the command's output: %q", r.stdout)
	}
	for _, line := range []string{"creating sandbox/demo", "installing tool", "copying " + repo + " into /workspace/repo", "running: tool --go", "copying /workspace/out out to " + out, "deleting sandbox/demo"} {
		if !strings.Contains(r.stderr, line) {
			t.Errorf("stderr lacks %q:\n%s", line, r.stderr)
		}
	}
	if b, err := os.ReadFile(filepath.Join(out, "out", "result.txt")); err != nil || string(b) != "42" {
		t.Errorf("copied out: %q %v", b, err)
	}
	if !strings.Contains(p.stdins["/workspace/repo"], "package main") {
		t.Error("the repository did not go in")
	}
	// The credential went into the Secret, and nowhere else.
	if r.secret == nil || string(r.secret.Data["TOOL_KEY"]) != "sk-secret-value" {
		t.Fatalf("secret: %+v", r.secret)
	}
	if spec := fmt.Sprintf("%+v", r.pod); strings.Contains(spec, "sk-secret-value") || !strings.Contains(spec, "TOOL_MODE") || r.pod.Spec.Containers[0].Image != "example.org/tool:1" {
		t.Errorf("pod spec: %s", spec)
	}
	if strings.Contains(r.stderr, "sk-secret-value") {
		t.Error("the credential appears on stderr")
	}
}

func TestRunCopiesOutAfterAFailingCommand(t *testing.T) {
	log := &stepLog{}
	p := newPlayer(t, log)
	p.code = 3
	r := runRun(t, context.Background(), log, p, nil, "--copy-out", "out:"+t.TempDir(), "demo", "--", "make", "test")
	var exit *ExitError
	if !errors.As(r.err, &exit) || exit.Code != 3 {
		t.Fatalf("err = %v, want the command's exit code 3", r.err)
	}
	steps := log.get()
	if n := len(steps); n < 3 || steps[n-3] != "command make test" || steps[n-2] != "copy out /workspace/out" || steps[n-1] != "delete pods" {
		t.Fatalf("steps: %q", steps)
	}
}

func TestRunGeneratesAName(t *testing.T) {
	log := &stepLog{}
	r := runRun(t, context.Background(), log, newPlayer(t, log), map[string]string{"TOOL_KEY": "k"}, "--agent", "tool", "-w", "repo")
	if r.err != nil {
		t.Fatal(r.err)
	}
	name := sandbox.NameOf(r.pod)
	if !strings.HasPrefix(name, "tool-") || len(name) != len("tool-")+5 || sandbox.ValidateName(name) != nil {
		t.Fatalf("generated name %q", name)
	}
	if !strings.Contains(r.stderr, "creating sandbox/"+name) {
		t.Errorf("stderr does not name the sandbox: %s", r.stderr)
	}
	if got := log.get(); !slicesContain(got, "command tool --go") {
		t.Errorf("the preset's command (in -w repo) did not run: %q", got)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A failure of the plugin before the command ran: 125, and the sandbox is
// gone again.
func TestRunFailureBeforeTheCommand(t *testing.T) {
	log := &stepLog{}
	p := newPlayer(t, log)
	p.failCopyIn = true
	r := runRun(t, context.Background(), log, p, nil, "--copy-in", t.TempDir(), "demo", "--", "true")
	var se *statusError
	if !errors.As(r.err, &se) || se.ExitCode() != PluginFailed || !strings.Contains(r.err.Error(), "--copy-in") {
		t.Fatalf("err = %v, want exit 125 naming the copy", r.err)
	}
	steps := log.get()
	if slicesContain(steps, "command true") || steps[len(steps)-1] != "delete pods" {
		t.Fatalf("steps: %q", steps)
	}
}

func TestRunKeep(t *testing.T) {
	log := &stepLog{}
	r := runRun(t, context.Background(), log, newPlayer(t, log), nil, "--keep", "demo", "--", "true")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if slicesContain(log.get(), "delete pods") {
		t.Fatal("--keep deleted the sandbox")
	}
	if !strings.Contains(r.stderr, "sandbox/demo kept") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// Ctrl-C while the command runs: the stream ends, nothing is copied out,
// the sandbox is deleted, and the signal decides the exit status.
func TestRunInterruptedDuringTheCommand(t *testing.T) {
	log := &stepLog{}
	p := newPlayer(t, log)
	p.block = true
	ctx, cancel := context.WithCancelCause(context.Background())
	sig := &cli.SignalError{Signal: os.Interrupt}
	p.onCommand = func() { cancel(sig) }
	r := runRun(t, ctx, log, p, nil, "--copy-out", "out:"+t.TempDir(), "demo", "--", "sleep", "300")
	if !errors.Is(r.err, sig) {
		t.Fatalf("err = %v, want the signal", r.err)
	}
	steps := log.get()
	if slicesContain(steps, "copy out /workspace/out") || steps[len(steps)-1] != "delete pods" {
		t.Fatalf("steps: %q", steps)
	}
}

func TestRunDetach(t *testing.T) {
	log := &stepLog{}
	r := runRun(t, context.Background(), log, newPlayer(t, log), map[string]string{"TOOL_KEY": "k"}, "--agent", "tool", "--copy-in", t.TempDir(), "--detach", "work")
	if r.err != nil {
		t.Fatal(r.err)
	}
	steps := log.get()
	if n := len(steps); steps[n-1] != "start main process" || !strings.HasPrefix(steps[n-2], "copy in") || !strings.HasPrefix(steps[n-3], "install:") {
		t.Fatalf("steps: %q", steps)
	}
	c := r.pod.Spec.Containers[0]
	if !c.Stdin || !c.TTY || !reflect.DeepEqual(c.Command[len(c.Command)-2:], []string{"tool", "--go"}) || !sandbox.HasMainProcess(r.pod) {
		t.Fatalf("main process: %q stdin %v tty %v", c.Command, c.Stdin, c.TTY)
	}
	if !strings.Contains(r.stderr, "kubectl agentkernel attach work") {
		t.Errorf("stderr does not say how to attach: %s", r.stderr)
	}
}

// Everything wrong with the command line fails before anything is made,
// with exit status 125.
func TestRunBadInputCreatesNothing(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"missing credential": {nil, []string{"--agent", "tool"}, "--agent tool needs TOOL_KEY in your environment"},
		"unknown agent":      {nil, []string{"--agent", "nope", "--", "x"}, `unknown agent preset "nope"`},
		"no command":         {nil, []string{"demo"}, "no command to run"},
		"no dash":            {nil, []string{"demo", "make", "test"}, "put '--' before the command"},
		"two names":          {nil, []string{"a", "b", "--", "x"}, "at most one sandbox name"},
		"bad name":           {nil, []string{"Demo", "--", "x"}, "invalid sandbox name"},
		"missing copy-in":    {nil, []string{"--copy-in", "/no/such/dir", "--", "x"}, `--copy-in "/no/such/dir": no such file or directory`},
		"empty copy-out":     {nil, []string{"--copy-out", ":x", "--", "x"}, "the sandbox path is empty"},
		"tty without stdin":  {nil, []string{"-t", "--", "x"}, "-t needs -i"},
		"detach copy-out":    {nil, []string{"--detach", "--copy-out", "out", "--", "x"}, "--copy-out needs the command to end"},
		"bad memory":         {nil, []string{"--memory", "lots", "--", "x"}, `--memory "lots" is not a valid quantity`},
		"bad max-bytes":      {nil, []string{"--max-bytes", "lots", "--", "x"}, "--max-bytes"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			log := &stepLog{}
			p := newPlayer(t, log)
			r := runRun(t, context.Background(), log, p, tc.env, tc.args...)
			var se *statusError
			if !errors.As(r.err, &se) || se.ExitCode() != PluginFailed || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("err = %v, want 125 and %q", r.err, tc.want)
			}
			if steps := log.get(); len(steps) > 0 {
				t.Fatalf("bad input reached the cluster: %q", steps)
			}
		})
	}
}

// Through Execute: a mistyped flag and the other plugin failures are 125.
func TestRunExitStatusThroughExecute(t *testing.T) {
	streams, _, _, errOut := genericiooptions.NewTestIOStreams()
	if code := Execute(context.Background(), streams, []string{"run", "--no-such-flag", "--", "true"}); code != PluginFailed {
		t.Fatalf("unknown flag: exit %d", code)
	}
	if !strings.HasPrefix(errOut.String(), "error: unknown flag: --no-such-flag") {
		t.Fatalf("stderr %q", errOut.String())
	}
	streams, _, _, errOut = genericiooptions.NewTestIOStreams()
	if code := Execute(context.Background(), streams, []string{"run", "demo"}); code != PluginFailed || !strings.Contains(errOut.String(), "no command to run") {
		t.Fatalf("no command: exit %d: %s", code, errOut.String())
	}
}

func TestParseCopySpecs(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		in, local, remote string
		out               bool
	}{
		{dir, dir, "/workspace/", false},
		{dir + ":repo", dir, "/workspace/repo", false},
		{dir + ":/tmp/x/", dir, "/tmp/x/", false},
		{"out", ".", "/workspace/out", true},
		{"/workspace/out:./got", "./got", "/workspace/out", true},
		{"out:a:b", "a:b", "/workspace/out", true},
	}
	for _, tc := range cases {
		parse := parseCopyIn
		if tc.out {
			parse = parseCopyOut
		}
		got, err := parse(tc.in)
		if err != nil || got.local != tc.local || got.remote != tc.remote {
			t.Errorf("%q: %+v %v, want %s %s", tc.in, got, err, tc.local, tc.remote)
		}
	}
}

// FuzzParseCopySpec: --copy-in/--copy-out values are the user's to type;
// parsing must never panic and what it accepts is absolute and clean.
func FuzzParseCopySpec(f *testing.F) {
	for _, s := range []string{"out", "a:b", ":", "/x:/y", "out:", "\x00:a", "a/../..:..", "C:\\x:y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCopyOut(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(c.remote, "/") || strings.Contains(c.remote, "/../") || c.local == "" {
			t.Fatalf("%q parsed as %+v", s, c)
		}
	})
}

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A --detach run that fails before its main process starts removes the
// sandbox like any other run.
func TestRunDetachFailureDeletes(t *testing.T) {
	log := &stepLog{}
	p := newPlayer(t, log)
	p.failCopyIn = true
	r := runRun(t, context.Background(), log, p, nil, "--copy-in", t.TempDir(), "--detach", "work", "--", "agent")
	var se *statusError
	if !errors.As(r.err, &se) || se.ExitCode() != PluginFailed {
		t.Fatalf("err = %v", r.err)
	}
	steps := log.get()
	if slicesContain(steps, "start main process") || steps[len(steps)-1] != "delete pods" {
		t.Fatalf("steps: %q", steps)
	}
}

// run --allow-host names the namespace's proxy by its Service's cluster IP,
// as create does: a sandbox has no DNS (its policy allows none), so the
// Service's name would leave every client of the proxy variables with
// EAI_AGAIN (npm in the claude preset's install step, on the real node).
func TestRunAllowHostNamesTheProxyByAddress(t *testing.T) {
	log := &stepLog{}
	cs := runCluster(log)
	objs := (&egress.Config{Namespace: "test", Image: "example.org/proxy:1"}).Objects()
	objs.Service.Spec.ClusterIP = "10.0.0.77"
	for _, o := range objs.List() {
		if err := cs.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	r := runRunOn(t, context.Background(), cs, newPlayer(t, log), map[string]string{"TOOL_KEY": "k"},
		"--agent", "tool", "--allow-host", "registry.example.org", "demo")
	if r.err != nil {
		t.Fatalf("%v\nstderr: %s", r.err, r.stderr)
	}
	if r.pod == nil {
		t.Fatal("no pod created")
	}
	env := map[string]string{}
	for _, e := range r.pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	for _, n := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		if env[n] != "http://10.0.0.77:3128" {
			t.Errorf("%s = %q, want the proxy Service's cluster IP", n, env[n])
		}
	}
}
