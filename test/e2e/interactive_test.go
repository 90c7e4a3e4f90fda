package e2e

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
	"github.com/agentkernel/kubectl-agentkernel/test/ptytest"
)

// onPTY runs the plugin on a real pseudo-terminal of rows x cols.
func onPTY(t *testing.T, rows, cols uint16, args ...string) *ptytest.Session {
	t.Helper()
	cmd := exec.Command(env.binary, append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent", "TERM=xterm")
	return ptytest.Start(t, rows, cols, cmd)
}

// shell on a real terminal: a login shell in /workspace, the terminal's
// size reaches the sandbox and follows a resize, the shell's exit code
// comes back, and the local terminal is restored.
func TestShellThroughARealTerminal(t *testing.T) {
	requireSimulated(t) // the simulated node gives exec -t a real pty on the host
	ns := newNamespace(t)
	createSandbox(t, ns, "demo")
	s := onPTY(t, 24, 80, "shell", "demo", "-n", ns)
	before := s.Termios(t) // the plugin has not changed it yet, or restores the same
	s.Ask(t, "pwd\n", "/workspace", time.Minute)
	if !ptytest.Raw(s.Termios(t)) {
		t.Fatal("the local terminal is not in raw mode during the session")
	}
	s.Ask(t, "stty size\n", "24 80", time.Minute)
	s.Resize(t, 40, 100)
	s.Ask(t, "stty size\n", "40 100", time.Minute)
	s.Type(t, "exit 3\n")
	if code := s.Exit(t, 2*time.Minute); code != 3 {
		t.Fatalf("exit %d, want the shell's 3:\n%q", code, s.Text())
	}
	if after := s.Termios(t); !ptytest.Same(before, after) || ptytest.Raw(after) {
		t.Fatalf("the local terminal was not restored: before %+v after %+v", before, after)
	}
}

// exec -it on a real terminal (raw mode): SIGTERM and SIGINT end it with
// 143 and 130 and restore the terminal. kubectl's own interrupt handler,
// which raw mode runs under, would exit 1 on the spot.
func TestExecOnARealTerminalEndsOnSignals(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "demo")
	for sig, want := range map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGINT: 130} {
		s := onPTY(t, 24, 80, "exec", "-it", "demo", "-n", ns, "--", "sh", "-c", "echo READY; sleep 300")
		before := s.Termios(t)
		s.WaitFor(t, "READY", time.Minute)
		if !ptytest.Raw(s.Termios(t)) {
			t.Fatal("exec -it did not put the terminal in raw mode")
		}
		if err := s.Cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if code := s.Exit(t, 2*time.Minute); code != want {
			t.Fatalf("%v: exit %d, want %d:\n%q", sig, code, want, s.Text())
		}
		if !ptytest.Same(before, s.Termios(t)) {
			t.Fatalf("%v did not restore the terminal", sig)
		}
	}
}

// attach on a real terminal: raw mode while attached; the detach keys
// leave the sandbox's main process running and restore the terminal; a
// signal ends attach with 143 and restores it too. The simulated node's
// attach only replays a log file and ignores input: whether a keystroke
// or a resize reaches a real main process is tested on the real node.
func TestAttachThroughARealTerminal(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	mustPlugin(t, "", "create", "agent", "-n", ns, "--command", "--", "sh", "-c", "read line; exit 7")
	s := onPTY(t, 24, 80, "attach", "agent", "-n", ns)
	before := s.Termios(t)
	s.WaitFor(t, "attached to sandbox/agent; ctrl-p,ctrl-q detaches", time.Minute)
	eventually(t, time.Minute, "raw mode", func() bool { return ptytest.Raw(s.Termios(t)) })
	s.Type(t, "\x10\x11") // ctrl-p ctrl-q
	if code := s.Exit(t, 2*time.Minute); code != 0 {
		t.Fatalf("detach: exit %d:\n%q", code, s.Text())
	}
	s.WaitFor(t, "detached from sandbox/agent, which keeps running", time.Minute)
	if after := s.Termios(t); !ptytest.Same(before, after) {
		t.Fatalf("detach did not restore the terminal: before %+v after %+v", before, after)
	}
	pod, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), "agentkernel-agent", metav1.GetOptions{})
	if err != nil || pod.DeletionTimestamp != nil {
		t.Fatalf("the sandbox did not survive the detach: %v", err)
	}

	for sig, want := range map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGINT: 130} {
		s := onPTY(t, 24, 80, "attach", "agent", "-n", ns)
		before := s.Termios(t)
		s.WaitFor(t, "attached to sandbox/agent", time.Minute)
		eventually(t, time.Minute, "raw mode", func() bool { return ptytest.Raw(s.Termios(t)) })
		if err := s.Cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if code := s.Exit(t, 2*time.Minute); code != want {
			t.Fatalf("%v: exit %d, want %d:\n%q", sig, code, want, s.Text())
		}
		if after := s.Termios(t); !ptytest.Same(before, after) {
			t.Fatalf("%v did not restore the terminal: before %+v after %+v", sig, before, after)
		}
	}

	// A sandbox without a main process has nothing to attach to.
	createSandbox(t, ns, "idle")
	wantError(t, plugin(t, "", "attach", "idle", "-n", ns), "runs no main process to attach to")
}

// On a terminal, create shows a live status line made from the Pod's
// events and states, and clears it.
func TestCreateShowsALiveStatusLine(t *testing.T) {
	requireSimulated(t) // the hold label keeps the sandbox waiting
	ns := newNamespace(t)
	s := onPTY(t, 24, 160, "create", "held", "-n", ns, "--label", localcluster.HoldLabel+"=true", "--timeout", "8s")
	if code := s.Exit(t, 2*time.Minute); code == 0 {
		t.Fatalf("a held sandbox was created:\n%q", s.Text())
	}
	screen := s.Text()
	for _, want := range []string{"sandbox/held: ", "Pending · Successfully assigned " + ns, "\x1b[2K", "error: sandbox \"held\" in namespace \"" + ns + "\" was not running within 8s"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the terminal did not show %q:\n%q", want, screen)
		}
	}
	assertNothingLeft(t, ns)
}

// logs and port-forward go through kubectl's machinery to the sandbox.
// The simulated node serves one fixed log file for every container (it
// runs no main process, so it cannot show one's output), and forwards
// every port to an echo service (cat): enough to prove the plumbing, not
// that a server in a sandbox is reached; the real node does that.
func TestLogsAndPortForward(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "demo")
	const simulated = "kwok: this container is simulated; kubectl exec runs commands in a sandbox on the host\n"
	if r := mustPlugin(t, "", "logs", "demo", "-n", ns); r.stdout != simulated {
		t.Fatalf("logs: %q", r.stdout)
	}
	if r := mustPlugin(t, "", "logs", "demo", "-n", ns, "--tail", "1", "--timestamps"); !strings.HasPrefix(r.stdout, "2026-01-01T00:00:00") {
		t.Fatalf("logs --timestamps: %q", r.stdout)
	}
	wantError(t, plugin(t, "", "logs", "ghost", "-n", ns), `sandbox "ghost" not found`)

	// -f follows until Ctrl-C, which ends it with 130.
	f := startPlugin(t, "logs", "demo", "-n", ns, "-f")
	f.waitFor(t, "kwok: this container is simulated")
	if err := f.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := f.exit(t); code != 130 {
		t.Fatalf("logs -f after Ctrl-C: exit %d", code)
	}

	pf := exec.Command(env.binary, "--kubeconfig", env.kubeconfig, "port-forward", "demo", "-n", ns, ":8080")
	stdout, err := pf.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	pf.Stderr = &stderr
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
	forwarding := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)
	sc := bufio.NewScanner(stdout)
	port := ""
	for port == "" && sc.Scan() {
		if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
			port = m[1]
		}
	}
	if port == "" {
		t.Fatalf("no forwarding line; stderr: %s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	conn, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("ping through the sandbox\n")); err != nil {
		t.Fatal(err)
	}
	echo, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if err != nil || echo != "ping through the sandbox\n" {
		t.Fatalf("port-forward echo: %q %v", echo, err)
	}
	if err := pf.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = pf.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("port-forward after Ctrl-C: %v\n%s", err, stderr.String())
	}
	wantError(t, plugin(t, "", "port-forward", "ghost", "-n", ns, "80"), `sandbox "ghost" not found`)
}
