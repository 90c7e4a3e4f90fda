package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runPID1 runs the sandbox's PID 1 script with a stand-in /proc and
// termination log, as a child of the test.
func runPID1(t *testing.T, idle string) (proc, IdleFile, termLog string, cmd *exec.Cmd, done chan error) {
	t.Helper()
	dir := t.TempDir()
	proc = filepath.Join(dir, "proc")
	if err := os.MkdirAll(filepath.Join(proc, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	termLog = filepath.Join(dir, "termination-log")
	IdleFile = filepath.Join(dir, "idle-timeout")
	script := strings.ReplaceAll(pid1Script, "/proc/", proc+"/")
	script = strings.ReplaceAll(script, "/dev/termination-log", termLog)
	cmd = exec.Command("/bin/sh", "-c", script, "agentkernel-pid1", idle, IdleFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return proc, IdleFile, termLog, cmd, done
}

func waitExit(t *testing.T, done chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: PID 1 exited with %v, want 0", what, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: PID 1 did not exit", what)
	}
}

func TestPID1StopsWhenIdle(t *testing.T) {
	_, _, termLog, _, done := runPID1(t, "1")
	waitExit(t, done, "idle 1s, nothing running")
	msg, _ := os.ReadFile(termLog)
	if !strings.HasPrefix(string(msg), IdleMessagePrefix) {
		t.Fatalf("termination message %q", msg)
	}
}

// While any other process exists, PID 1 stays; once it is gone, the idle
// time starts over.
func TestPID1StaysWhileBusy(t *testing.T) {
	proc, _, _, _, done := runPID1(t, "2")
	busy := filepath.Join(proc, "4242")
	if err := os.Mkdir(busy, 0o755); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("PID 1 exited (%v) while another process ran", err)
	case <-time.After(4 * time.Second): // twice the idle timeout, busy throughout
	}
	if err := os.Remove(busy); err != nil {
		t.Fatal(err)
	}
	waitExit(t, done, "after the other process ended")
}

// A claim sets the idle timeout of a warm member after it started: it
// writes the file and wakes PID 1 with SIGUSR1.
func TestPID1TakesTheClaimsIdleTimeout(t *testing.T) {
	_, IdleFile, _, cmd, done := runPID1(t, "0")
	time.Sleep(200 * time.Millisecond) // let the shell install its traps
	if err := os.WriteFile(IdleFile, []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitExit(t, done, "idle timeout set by a claim")
}

func TestPID1ExitsOnSIGTERM(t *testing.T) {
	_, _, _, cmd, done := runPID1(t, "0")
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, done, "SIGTERM")
}

func TestPID1CommandCarriesTheIdleTimeout(t *testing.T) {
	s := NewSpec("x", "ns")
	s.IdleTimeout = 90*time.Second + time.Millisecond
	c := s.Pod().Spec.Containers[0].Command
	if len(c) != 6 || c[4] != "91" || c[5] != IdleFile {
		t.Fatalf("command %q", c)
	}
	if err := validateIdleTimeout(500 * time.Millisecond); err == nil {
		t.Fatal("sub-second idle timeout accepted")
	}
}
