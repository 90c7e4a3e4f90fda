// Package ptytest runs a command on a real pseudo-terminal, as a user's
// shell would: the terminal is its stdin, stdout and stderr and its
// controlling terminal, so raw mode, SIGWINCH and restoring the terminal
// are the kernel's, not a fake's. The e2e and real-node suites share it.
package ptytest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Session is a command running on a pseudo-terminal.
type Session struct {
	Cmd       *exec.Cmd
	ptmx, tty *os.File
	mu        sync.Mutex
	screen    bytes.Buffer
	done      chan struct{}
	err       error
}

// Start runs cmd (not started yet) on a new terminal of rows x cols. The
// test ends it if it is still running.
func Start(t *testing.T, rows, cols uint16, cmd *exec.Cmd) *Session {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal on this machine: %v", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	s := &Session{Cmd: cmd, ptmx: ptmx, tty: tty, done: make(chan struct{})}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
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
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = cmd.Process.Kill()
			<-s.done
		}
		ptmx.Close()
		tty.Close()
	})
	return s
}

// Text is everything the terminal showed so far.
func (s *Session) Text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.screen.String()
}

// WaitFor waits until the terminal shows want (at most timeout).
func (s *Session) WaitFor(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(s.Text(), want) {
			return
		}
	}
	t.Fatalf("the terminal did not show %q within %s:\n%q", want, timeout, s.Text())
}

// Type sends keys as if typed.
func (s *Session) Type(t *testing.T, keys string) {
	t.Helper()
	if _, err := s.ptmx.Write([]byte(keys)); err != nil {
		t.Fatal(err)
	}
}

// Ask types line until the terminal answers with want, for as long as
// timeout: the other side may read the first lines before a terminal size
// sent with them.
func (s *Session) Ask(t *testing.T, line, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		from := len(s.Text())
		s.Type(t, line)
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if strings.Contains(s.Text()[from:], want) {
				return
			}
		}
	}
	t.Fatalf("the terminal never answered %q with %q:\n%q", line, want, s.Text())
}

// Resize changes the terminal's size: the kernel sends SIGWINCH to the
// command, as when a user resizes a window.
func (s *Session) Resize(t *testing.T, rows, cols uint16) {
	t.Helper()
	if err := pty.Setsize(s.ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
}

// Termios is the terminal's current settings.
func (s *Session) Termios(t *testing.T) *unix.Termios {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(s.tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio
}

// Raw reports whether the terminal is in raw mode (no line editing, no echo).
func Raw(tio *unix.Termios) bool { return tio.Lflag&(unix.ICANON|unix.ECHO) == 0 }

// Same reports whether the settings a raw mode changes are as in b.
func Same(a, b *unix.Termios) bool {
	return a.Iflag == b.Iflag && a.Oflag == b.Oflag && a.Lflag == b.Lflag && a.Cflag == b.Cflag
}

// drain waits until what the command wrote before it exited has been read
// from the terminal: the reader gets no end of file (the test keeps the
// terminal open to read its modes), so the sign is a quiet 200 ms.
func (s *Session) drain() {
	last := -1
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		s.mu.Lock()
		n := s.screen.Len()
		s.mu.Unlock()
		if n == last {
			return
		}
		last = n
	}
}

// Exit waits (at most timeout) for the command and returns its exit code,
// once the terminal shows all it wrote.
func (s *Session) Exit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		_ = s.Cmd.Process.Kill()
		t.Fatalf("the command did not end within %s; the terminal shows:\n%q", timeout, s.Text())
	}
	s.drain()
	if ee, ok := s.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	return 0
}
