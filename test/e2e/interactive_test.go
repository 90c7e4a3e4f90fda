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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// ptySession runs the plugin on a real pseudo-terminal, as a user's shell
// would: the terminal is its stdin, stdout and stderr and its controlling
// terminal, so raw mode, SIGWINCH and restoring the terminal are real.
type ptySession struct {
	cmd       *exec.Cmd
	ptmx, tty *os.File
	mu        sync.Mutex
	screen    bytes.Buffer
	done      chan struct{}
	err       error
}

func startOnPTY(t *testing.T, rows, cols uint16, args ...string) *ptySession {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal on this machine: %v", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	s := &ptySession{ptmx: ptmx, tty: tty, done: make(chan struct{})}
	s.cmd = exec.Command(env.binary, append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
	s.cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent", "TERM=xterm")
	s.cmd.Stdin, s.cmd.Stdout, s.cmd.Stderr = tty, tty, tty
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			s.mu.Lock()
			s.screen.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		ptmx.Close()
		tty.Close()
	})
	return s
}

func (s *ptySession) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.screen.String()
}

// waitScreen waits until the terminal shows want after position from.
func (s *ptySession) waitScreen(t *testing.T, from int, want string) {
	t.Helper()
	eventually(t, time.Minute, "the terminal to show "+want, func() bool {
		txt := s.text()
		return len(txt) > from && strings.Contains(txt[from:], want)
	})
}

func (s *ptySession) send(t *testing.T, keys string) {
	t.Helper()
	if _, err := s.ptmx.Write([]byte(keys)); err != nil {
		t.Fatal(err)
	}
}

func (s *ptySession) termios(t *testing.T) *unix.Termios {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(s.tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio
}

func (s *ptySession) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(2 * time.Minute):
		_ = s.cmd.Process.Kill()
		t.Fatalf("the plugin did not end; the terminal shows:\n%q", s.text())
	}
	if ee, ok := s.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	return 0
}

func isRaw(tio *unix.Termios) bool { return tio.Lflag&(unix.ICANON|unix.ECHO) == 0 }

// sameTerminal: the settings a raw mode changes are back as they were.
func sameTerminal(a, b *unix.Termios) bool {
	return a.Iflag == b.Iflag && a.Oflag == b.Oflag && a.Lflag == b.Lflag && a.Cflag == b.Cflag
}

// askUntil sends a line until the terminal answers with want: the remote
// side may see the line before the size the client sent with it.
func (s *ptySession) askUntil(t *testing.T, line, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		from := len(s.text())
		s.send(t, line)
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if strings.Contains(s.text()[from:], want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never answered %q with %q:\n%q", line, want, s.text())
		}
	}
}

// shell on a real terminal: a login shell in /workspace, the terminal's
// size reaches the sandbox and follows a resize, the shell's exit code
// comes back, and the local terminal is restored.
func TestShellThroughARealTerminal(t *testing.T) {
	requireSimulated(t) // the simulated node gives exec -t a real pty on the host
	ns := newNamespace(t)
	createSandbox(t, ns, "demo")
	s := startOnPTY(t, 24, 80, "shell", "demo", "-n", ns)
	before := s.termios(t) // the plugin has not changed it yet, or restores the same
	s.askUntil(t, "pwd\n", "/workspace")
	if !isRaw(s.termios(t)) {
		t.Fatal("the local terminal is not in raw mode during the session")
	}
	s.askUntil(t, "stty size\n", "24 80")
	if err := pty.Setsize(s.ptmx, &pty.Winsize{Rows: 40, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	s.askUntil(t, "stty size\n", "40 100")
	s.send(t, "exit 3\n")
	if code := s.exit(t); code != 3 {
		t.Fatalf("exit %d, want the shell's 3:\n%q", code, s.text())
	}
	if after := s.termios(t); !sameTerminal(before, after) || isRaw(after) {
		t.Fatalf("the local terminal was not restored: before %+v after %+v", before, after)
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
	s := startOnPTY(t, 24, 80, "attach", "agent", "-n", ns)
	before := s.termios(t)
	s.waitScreen(t, 0, "attached to sandbox/agent; ctrl-p,ctrl-q detaches")
	eventually(t, time.Minute, "raw mode", func() bool { return isRaw(s.termios(t)) })
	s.send(t, "\x10\x11") // ctrl-p ctrl-q
	if code := s.exit(t); code != 0 {
		t.Fatalf("detach: exit %d:\n%q", code, s.text())
	}
	s.waitScreen(t, 0, "detached from sandbox/agent, which keeps running")
	if after := s.termios(t); !sameTerminal(before, after) {
		t.Fatalf("detach did not restore the terminal: before %+v after %+v", before, after)
	}
	pod, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), "agentkernel-agent", metav1.GetOptions{})
	if err != nil || pod.DeletionTimestamp != nil {
		t.Fatalf("the sandbox did not survive the detach: %v", err)
	}

	for sig, want := range map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGINT: 130} {
		s := startOnPTY(t, 24, 80, "attach", "agent", "-n", ns)
		before := s.termios(t)
		s.waitScreen(t, 0, "attached to sandbox/agent")
		eventually(t, time.Minute, "raw mode", func() bool { return isRaw(s.termios(t)) })
		if err := s.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if code := s.exit(t); code != want {
			t.Fatalf("%v: exit %d, want %d:\n%q", sig, code, want, s.text())
		}
		if after := s.termios(t); !sameTerminal(before, after) {
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
	s := startOnPTY(t, 24, 160, "create", "held", "-n", ns, "--label", localcluster.HoldLabel+"=true", "--timeout", "8s")
	if code := s.exit(t); code == 0 {
		t.Fatalf("a held sandbox was created:\n%q", s.text())
	}
	screen := s.text()
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
