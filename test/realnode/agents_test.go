package realnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/agentkernel/kubectl-agentkernel/test/ptytest"
)

// The one-shot run and a sandbox's main process on a real kubelet: what the
// simulated node cannot show (a container that really runs the command,
// with the Pod's environment; a main process that reads its terminal,
// follows a resize and ends with an exit code).

// sandboxGone checks that run deleted the sandbox: its Pod is gone, or
// (a slow guest) terminating and then gone.
func (s *suite) sandboxGone(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	s.sandboxGoneIn(ctx, t, s.namespace, name)
}

// sandboxGoneIn is sandboxGone in namespace ns.
func (s *suite) sandboxGoneIn(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	err := poll(ctx, deleteTimeout, func() (bool, error) {
		list, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
			LabelSelector: labels.SelectorFromSet(labels.Set{sandboxLabel: name}).String(),
		})
		if err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				return false, fmt.Errorf("run returned, but sandbox %s's pod %s was not deleted (%s)", name, p.Name, p.Status.Phase)
			}
		}
		return len(list.Items) == 0, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunEndToEnd: create → copy a repository in → run (with the Pod's
// environment, as the sandbox's user) → copy the result out → delete, with
// the plugin's default image; and a failing command's exit code and
// partial work.
func TestRunEndToEnd(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	repo := t.TempDir()
	if err := os.WriteFile(filepath.Join(repo, "in.txt"), []byte("the agent's input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	c, cancel := context.WithTimeout(ctx, podRunningTimeout+deleteTimeout+3*execTimeout)
	defer cancel()
	r := s.pluginRun(c, "", "run", "rn-run", "-n", s.namespace, "--env", "GREETING=hello",
		"--copy-in", repo+":repo", "--copy-out", "repo:"+out, "-w", "repo",
		"--", "sh", "-c", `tr a-z A-Z < in.txt > out.txt && echo "$GREETING from uid $(id -u) in $(pwd)"`)
	if r.code != 0 {
		t.Fatalf("run: %s\n%s", r, s.node.Diagnostics())
	}
	record("plugin: run one-shot (create → cp in → exec → cp out → delete)", r.took)
	if r.stdout != "hello from uid 1000 in /workspace/repo\n" {
		t.Errorf("the command's output: %q", r.stdout)
	}
	if b, err := os.ReadFile(filepath.Join(out, "repo", "out.txt")); err != nil || string(b) != "THE AGENT'S INPUT\n" {
		t.Errorf("copied out: %q %v", b, err)
	}
	s.sandboxGone(ctx, t, "rn-run")

	c2, cancel2 := context.WithTimeout(ctx, podRunningTimeout+deleteTimeout+3*execTimeout)
	defer cancel2()
	r = s.pluginRun(c2, "", "run", "rn-fail", "-n", s.namespace, "--copy-out", "partial.txt:"+out,
		"--", "sh", "-c", "echo half done > partial.txt; exit 3")
	if r.code != 3 {
		t.Fatalf("a failing command: want its exit code 3: %s", r)
	}
	if b, err := os.ReadFile(filepath.Join(out, "partial.txt")); err != nil || string(b) != "half done\n" {
		t.Errorf("partial work: %q %v", b, err)
	}
	s.sandboxGone(ctx, t, "rn-fail")
}

// pluginOnPTY runs the plugin on a pseudo-terminal of 24 x 80.
func (s *suite) pluginOnPTY(t *testing.T, args ...string) *ptytest.Session {
	t.Helper()
	return ptytest.Start(t, 24, 80, exec.Command(s.plugin, append([]string{"--kubeconfig", s.cluster.AdminKubeconfig}, args...)...))
}

// TestAttachToAMainProcess: a main process with a terminal (create
// --command) sees the attached terminal's size and its resize, keeps
// running when the user detaches, and attach returns its exit code, 7.
func TestAttachToAMainProcess(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	const name = "rn-attach"
	agent := `while read -r line; do case "$line" in size) stty size;; stop) echo stopping; exit 7;; esac; done`
	s.createSandbox(ctx, t, name, "--command", "--", "sh", "-c", agent)

	p := s.pluginOnPTY(t, "attach", name, "-n", s.namespace)
	before := p.Termios(t)
	p.Ask(t, "size\n", "24 80", execTimeout)
	p.Resize(t, 40, 100)
	p.Ask(t, "size\n", "40 100", execTimeout)
	p.Type(t, "\x10\x11") // ctrl-p ctrl-q
	if code := p.Exit(t, execTimeout); code != 0 {
		t.Fatalf("detach: exit %d:\n%q", code, p.Text())
	}
	if !ptytest.Same(before, p.Termios(t)) {
		t.Error("detach did not restore the terminal")
	}
	if pod := s.sandboxPod(ctx, t, name); pod.Status.Phase != "Running" {
		t.Fatalf("after a detach the main process must keep running; the sandbox is %s", pod.Status.Phase)
	}

	p = s.pluginOnPTY(t, "attach", name, "-n", s.namespace)
	p.Ask(t, "size\n", "24 80", execTimeout)
	t0 := time.Now()
	p.Type(t, "stop\n")
	if code := p.Exit(t, execTimeout); code != 7 {
		t.Fatalf("attach returned %d, want the main process's 7:\n%q", code, p.Text())
	}
	record("plugin: attach, main process exits → attach returns its code", time.Since(t0))
	if !strings.Contains(p.Text(), "stopping") {
		t.Errorf("the main process's output did not reach the terminal: %q", p.Text())
	}
	if !ptytest.Same(before, p.Termios(t)) {
		t.Error("attach did not restore the terminal after the process ended")
	}
}
