package testexec

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Served is `kubectl agentkernel serve` run by a test (the e2e tier's and
// the real node's): its process, its log, and the variables it printed.
type Served struct {
	Cmd    *exec.Cmd
	Stderr *SyncBuffer
	// Exited is closed once the process has exited.
	Exited chan struct{}
	// Vars are the export lines it printed: E2B_API_URL, E2B_SANDBOX_URL
	// and E2B_API_KEY.
	Vars map[string]string
}

// StartServed runs argv (a serve command line, on a free loopback port),
// with no kubeconfig but the one argv names, until the test ends, and
// reads the three export lines serve prints, within a minute.
func StartServed(t testing.TB, argv ...string) *Served {
	t.Helper()
	s := &Served{Cmd: exec.Command(argv[0], argv[1:]...), Stderr: &SyncBuffer{}, Exited: make(chan struct{}), Vars: map[string]string{}}
	s.Cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	s.Cmd.Stderr = s.Stderr
	stdout, err := s.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Cmd.Wait(); close(s.Exited) }()
	t.Cleanup(func() { s.Stop(t) })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	deadline := time.After(time.Minute)
	for len(s.Vars) < 3 {
		select {
		case l, ok := <-lines:
			if !ok {
				<-s.Exited
				t.Fatalf("serve ended before printing its variables:\n%s", s.Stderr)
			}
			k, v, found := strings.Cut(strings.TrimPrefix(l, "export "), "=")
			if !strings.HasPrefix(l, "export ") || !found {
				t.Fatalf("serve printed %q, not an export line", l)
			}
			s.Vars[k] = v
		case <-deadline:
			t.Fatalf("serve printed no variables within a minute:\n%s", s.Stderr)
		}
	}
	return s
}

// Stop sends SIGTERM and waits for the exit (a minute, then SIGKILL and
// a test error); it returns serve's log.
func (s *Served) Stop(t testing.TB) string {
	select {
	case <-s.Exited:
		return s.Stderr.String()
	default:
	}
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.Exited:
	case <-time.After(time.Minute):
		_ = s.Cmd.Process.Kill()
		<-s.Exited
		t.Errorf("serve did not stop within a minute of SIGTERM:\n%s", s.Stderr)
	}
	return s.Stderr.String()
}
