package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// poolRunCluster is runCluster holding pool "warm" of size ready members,
// defined by spec (mutate changes it); the step log starts after it.
func poolRunCluster(t *testing.T, log *stepLog, size int, mutate func(*sandbox.Spec)) *fake.Clientset {
	t.Helper()
	cs := runCluster(log)
	var mu sync.Mutex
	n := 0
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if pod.Name == "" && pod.GenerateName != "" { // the API server's, which the fake lacks
			mu.Lock()
			n++
			pod.Name = fmt.Sprintf("%s%05d", pod.GenerateName, n)
			mu.Unlock()
		}
		return false, nil, nil
	})
	spec := sandbox.NewSpec("warm", "test")
	if mutate != nil {
		mutate(&spec)
	}
	p, err := pool.NewPool("warm", spec, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CreatePool(context.Background(), cs, p, pool.PoolOptions{}); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	log.steps = nil
	log.mu.Unlock()
	cs.ClearActions()
	return cs
}

// toolPool is a pool made with --agent tool (clitest.Presets): the preset's
// image, network, environment and install step (run by each member while
// it warms up), no credentials.
func toolPool(s *sandbox.Spec) {
	coldToolPool(s)
	s.WarmInstall = "install-the-tool"
}

// coldToolPool is a pool for --agent tool whose members do not install it
// (made by an earlier version, or with --allow-host): each claim does.
func coldToolPool(s *sandbox.Spec) {
	s.Image, s.Agent = "example.org/tool:1", "tool"
	s.Profile = sandbox.ProfileModerate
	s.Network, s.ReadOnlyRoot = s.Profile.Defaults()
	s.Env = []corev1.EnvVar{{Name: "TOOL_MODE", Value: "fast"}}
}

func warmMembers(t *testing.T, cs *fake.Clientset) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods("test").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var warm []corev1.Pod
	for _, p := range list.Items {
		if p.Labels[sandbox.LabelPool] == "warm" && p.Labels[sandbox.LabelSandbox] == "" {
			warm = append(warm, p)
		}
	}
	return warm
}

// run --pool --agent: the claim takes a warm member of a pool made for the
// agent, brings the preset's credential (over exec stdin, never in a
// spec or an argument), skips the preset's install step (the member ran it
// while it warmed up), then the steps of every run; the claimed member is what is deleted, and the pool is whole
// again when run returns.
func TestRunPoolClaimsWarm(t *testing.T) {
	const secret = "sk-claimed-secret"
	log := &stepLog{}
	cs := poolRunCluster(t, log, 1, toolPool)
	member := warmMembers(t, cs)[0]
	repo := t.TempDir()
	writeTestFile(t, filepath.Join(repo, "main.go"), "package main\n")
	out := t.TempDir()
	p := newPlayer(t, log)
	r := runRunOn(t, context.Background(), cs, p, map[string]string{"TOOL_KEY": secret},
		"--pool", "warm", "--agent", "tool", "--copy-in", repo+":/workspace/repo", "--copy-out", "/workspace/out:"+out, "demo")
	if r.err != nil {
		t.Fatalf("%v\nstderr: %s", r.err, r.stderr)
	}
	var steps []string
	for _, s := range log.get() {
		// The refill (a new member, behind its gate) runs beside the others.
		if s != "create pods" && s != "start pod" && s != "create selfsubjectreviews" && s != "create networkpolicies" {
			steps = append(steps, s)
		}
	}
	want := []string{
		"claim pod",
		"create secrets", // the claim's own, owned by the member
		"deliver the claim's environment",
		"complete the claim",
		"copy in /workspace/repo",
		"command tool --go",
		"copy out /workspace/out",
		"delete pods",
	}
	if !reflect.DeepEqual(steps, want) {
		t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
	}
	for _, line := range []string{"claiming sandbox/demo from pool warm", "sandbox/demo: claimed warm from pool warm", "tool was installed in sandbox/demo while it warmed up", "deleting sandbox/demo"} {
		if !strings.Contains(r.stderr, line) {
			t.Errorf("stderr lacks %q:\n%s", line, r.stderr)
		}
	}
	if r.stdout != "agent output\n" {
		t.Errorf("stdout: %q", r.stdout)
	}
	if b, err := os.ReadFile(filepath.Join(out, "out", "result.txt")); err != nil || string(b) != "42" {
		t.Errorf("copied out: %q %v", b, err)
	}
	// Every exec after the delivery ran with the claim's environment.
	if p.sourced < 3 {
		t.Errorf("%d execs sourced the claim's environment, want copy in, command and copy out", p.sourced)
	}
	if strings.Contains(r.stderr, "installing tool") {
		t.Errorf("the claim installed the agent again:\n%s", r.stderr)
	}
	if !strings.Contains(p.stdins["claim"], secret) || !strings.Contains(p.stdins["claim"], "TOOL_MODE") {
		t.Errorf("the claim's environment did not go in over stdin: %q", p.stdins["claim"])
	}
	// The sandbox deleted is the claimed member itself.
	var deleted []string
	for _, a := range cs.Actions() {
		if d, ok := a.(k8stesting.DeleteAction); ok && d.GetResource().Resource == "pods" {
			deleted = append(deleted, d.GetName())
		}
	}
	if !reflect.DeepEqual(deleted, []string{member.Name}) || !strings.HasPrefix(member.Name, sandbox.PoolMemberPrefix("warm")) {
		t.Fatalf("deleted %v, want the claimed member %s", deleted, member.Name)
	}
	if warm := warmMembers(t, cs); len(warm) != 1 || warm[0].Name == member.Name {
		t.Fatalf("the pool was not refilled before run returned: %d warm", len(warm))
	}
	// The secret: in the claim's Secret and the stdin of the delivery only.
	for _, u := range p.urls {
		if strings.Contains(u, secret) {
			t.Fatalf("the secret is in an exec request: %s", u)
		}
	}
	for _, a := range cs.Actions() {
		if c, ok := a.(k8stesting.CreateAction); ok {
			if pod, ok := c.GetObject().(*corev1.Pod); ok && strings.Contains(fmt.Sprintf("%+v", pod), secret) {
				t.Fatal("the secret is in a Pod spec")
			}
		}
		if pa, ok := a.(k8stesting.PatchAction); ok && strings.Contains(string(pa.GetPatch()), secret) {
			t.Fatal("the secret is in a patch")
		}
	}
	if strings.Contains(r.stderr, secret) {
		t.Fatal("the secret is on stderr")
	}
}

// With no ready member, run --pool creates the sandbox cold from the
// pool's definition and says why.
func TestRunPoolFallsBackCold(t *testing.T) {
	log := &stepLog{}
	cs := poolRunCluster(t, log, 1, func(s *sandbox.Spec) { s.Image = "python:3.12" })
	for _, m := range warmMembers(t, cs) {
		if err := cs.CoreV1().Pods("test").Delete(context.Background(), m.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cs.ClearActions()
	r := runRunOn(t, context.Background(), cs, newPlayer(t, log), nil, "--pool", "warm", "demo", "--", "true")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, `sandbox/demo: cold: pool "warm" has no ready member (all claimed)`) {
		t.Errorf("stderr does not say it was cold, and why:\n%s", r.stderr)
	}
	if r.pod == nil || r.pod.Name != sandbox.PodName("demo") || r.pod.Spec.Containers[0].Image != "python:3.12" {
		t.Fatalf("cold sandbox: %+v", r.pod)
	}
	if steps := log.get(); steps[len(steps)-1] != "delete pods" {
		t.Fatalf("steps: %q", steps)
	}
}

// What run --pool refuses, it refuses before anything is written: a pool
// that does not exist, a shaping flag the pool has otherwise, an agent the
// pool was not made for, and options a warm sandbox cannot have. 125, as
// every failure of the plugin before the command.
func TestRunPoolRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"missing pool":     {[]string{"--pool", "nope", "--", "true"}, `pool "nope" not found in namespace "test"`},
		"other image":      {[]string{"--pool", "warm", "--image", "node:22", "--", "true"}, `--image: the pool has "python:3.12", the claim asks for "node:22"`},
		"other agent":      {[]string{"--pool", "warm", "--agent", "tool"}, `--agent: the pool has none, the claim asks for "tool"`},
		"not for a claim":  {[]string{"--pool", "warm", "--allow-host", "example.com", "--", "true"}, "--allow-host cannot be used with --pool"},
		"detach":           {[]string{"--pool", "warm", "--detach", "--", "true"}, "--detach cannot be used with --pool"},
		"create namespace": {[]string{"--pool", "warm", "--create-namespace", "--", "true"}, "--create-namespace cannot be used with --pool"},
		"wait needs pool":  {[]string{"--pool-wait", "--", "true"}, "--pool-wait needs --pool"},
		"bad pool name":    {[]string{"--pool", "Warm!", "--", "true"}, "invalid pool name"},
	} {
		t.Run(name, func(t *testing.T) {
			log := &stepLog{}
			cs := poolRunCluster(t, log, 1, func(s *sandbox.Spec) { s.Image = "python:3.12" })
			r := runRunOn(t, context.Background(), cs, newPlayer(t, log), map[string]string{"TOOL_KEY": "k"}, tc.args...)
			var se *statusError
			if !errors.As(r.err, &se) || se.ExitCode() != PluginFailed || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("err = %v, want 125 and %q", r.err, tc.want)
			}
			for _, a := range cs.Actions() {
				if v := a.GetVerb(); v != "get" && v != "list" {
					t.Fatalf("a refused run wrote: %v", a)
				}
			}
			if len(warmMembers(t, cs)) != 1 {
				t.Fatal("the pool lost its member")
			}
		})
	}
}

// create --pool --agent: a member of a pool made for the agent installed
// it while it warmed up, so the claim does not; a member that did not (a
// pool made without, or a preset whose install step changed since) gets
// the install step after the claim, as a cold create does. --command is
// refused with --pool.
func TestCreatePoolAgentInstallsOnlyWhatTheMemberDidNot(t *testing.T) {
	presets := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(presets, []byte(clitest.Presets), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(changed, []byte(strings.Replace(clitest.Presets, "install: install-the-tool", "install: install-the-tool@2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	create := func(cs *fake.Clientset, p *sandboxPlayer, args ...string) (string, error) {
		streams, _, out, _ := genericiooptions.NewTestIOStreams()
		o := NewCreateOptions(streams)
		o.Sandbox.LookupEnv = func(k string) (string, bool) { return "k", k == "TOOL_KEY" }
		o.Executor = p
		tf := clitest.Factory(t)
		cmd := newCmdCreate(tf, o)
		if err := cmd.ParseFlags(append([]string{"--agents-file", presets}, args...)); err != nil {
			return "", err
		}
		if err := o.Complete(tf, cmd, cmd.Flags().Args()); err != nil {
			return "", err
		}
		o.Clientset = withREST{cs, o.Clientset.CoreV1().RESTClient()}
		if err := o.Validate(); err != nil {
			return "", err
		}
		err := o.Run(context.Background())
		return out.String(), err
	}
	for name, tc := range map[string]struct {
		pool    func(*sandbox.Spec)
		presets string
		install string // the install step the claim runs, or ""
	}{
		"installed warm":  {toolPool, presets, ""},
		"pool without":    {coldToolPool, presets, "install: install-the-tool"},
		"install changed": {toolPool, changed, "install: install-the-tool@2"},
	} {
		t.Run(name, func(t *testing.T) {
			log := &stepLog{}
			cs := poolRunCluster(t, log, 1, tc.pool)
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			o := NewCreateOptions(streams)
			o.Sandbox.LookupEnv = func(k string) (string, bool) { return "k", k == "TOOL_KEY" }
			o.Executor = newPlayer(t, log)
			tf := clitest.Factory(t)
			cmd := newCmdCreate(tf, o)
			if err := cmd.ParseFlags([]string{"--agents-file", tc.presets, "task", "--pool", "warm", "--agent", "tool"}); err != nil {
				t.Fatal(err)
			}
			if err := o.Complete(tf, cmd, cmd.Flags().Args()); err != nil {
				t.Fatal(err)
			}
			o.Clientset = withREST{cs, o.Clientset.CoreV1().RESTClient()}
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := o.Run(context.Background()); err != nil || out.String() != "sandbox/task created (claimed warm from pool warm)\n" {
				t.Fatalf("%q %v\n%s", out.String(), err, errOut.String())
			}
			steps := log.get()
			claim := slices.Index(steps, "claim pod")
			installs := slices.IndexFunc(steps, func(s string) bool { return strings.HasPrefix(s, "install: ") })
			switch {
			case claim < 0:
				t.Fatalf("steps: %q; no claim", steps)
			case tc.install == "" && installs >= 0:
				t.Fatalf("steps: %q; the claim installed what the member had", steps)
			case tc.install == "" && !strings.Contains(errOut.String(), "tool was installed in sandbox/task while it warmed up"):
				t.Fatalf("stderr does not say the agent was installed warm:\n%s", errOut.String())
			case tc.install != "" && (installs < claim || steps[installs] != tc.install):
				t.Fatalf("steps: %q; want %q after the claim", steps, tc.install)
			}
		})
	}
	log := &stepLog{}
	cs := poolRunCluster(t, log, 1, toolPool)
	var err error
	_, err = create(cs, newPlayer(t, log), "task2", "--pool", "warm", "--agent", "tool", "--command")
	if err == nil || !strings.Contains(err.Error(), "--command cannot be used with --pool") {
		t.Fatalf("create --pool --command: %v", err)
	}
}
