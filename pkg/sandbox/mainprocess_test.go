package sandbox

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
)

func mainSpec() Spec {
	s := NewSpec("agent", "ns")
	s.Command = []string{"claude", "--resume"}
	s.Stdin, s.TTY = true, true
	return s
}

func TestMainProcessPod(t *testing.T) {
	s := mainSpec()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	pod := s.Pod()
	c := pod.Spec.Containers[0]
	if want := []string{"/bin/sh", "-c", mainScript, "agentkernel-main", "", "claude", "--resume"}; !reflect.DeepEqual(c.Command, want) {
		t.Errorf("command = %q", c.Command)
	}
	if !c.Stdin || !c.TTY || c.StdinOnce {
		t.Errorf("stdin %v tty %v stdinOnce %v: attach needs stdin kept open", c.Stdin, c.TTY, c.StdinOnce)
	}
	if v := fakecluster.RestrictedViolations(t, pod); v != "" {
		t.Errorf("a main process breaks Pod Security restricted: %s", v)
	}
	if !HasMainProcess(pod) || !MainTTY(pod) {
		t.Error("HasMainProcess/MainTTY do not see it")
	}
	s.HoldCommand = true
	if got := s.Pod().Spec.Containers[0].Command[4]; got != startGate {
		t.Errorf("held: gate argument %q", got)
	}
	idle := NewSpec("idle", "ns")
	if p := idle.Pod(); HasMainProcess(p) || p.Spec.Containers[0].Command[2] != pid1Script {
		t.Error("a sandbox without a command must keep the idle loop")
	}
}

func TestMainProcessValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Spec)
		want   string
	}{
		"tty without stdin": {func(s *Spec) { s.Stdin = false }, "needs its stdin open"},
		"empty command":     {func(s *Spec) { s.Command = []string{""} }, "command is empty"},
		"stdin, no command": {func(s *Spec) { s.Command = nil }, "need a main process"},
		"hold, no command":  {func(s *Spec) { s.Command, s.Stdin, s.TTY, s.HoldCommand = nil, false, false, true }, "need a main process"},
		"idle timeout":      {func(s *Spec) { s.IdleTimeout = time.Minute }, "idleTimeout is for sandboxes without a main process"},
	} {
		s := mainSpec()
		tc.mutate(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// runMain runs the main process script with this machine's sh, as a
// sandbox's PID 1 runs it.
func runMain(t *testing.T, gate, stdin string, command ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", mainScript, "agentkernel-main", gate}, command...)...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return ee.ExitCode()
}

func TestMainScriptPassesStatusAndStdin(t *testing.T) {
	out, err := runMain(t, "", "from stdin\n", "sh", "-c", "cat; exit 7").Output()
	if code := exitCode(t, err); code != 7 || string(out) != "from stdin\n" {
		t.Fatalf("exit %d, stdout %q: want 7 and stdin passed through", code, out)
	}
	if code := exitCode(t, runMain(t, "", "", "no-such-program-xyz").Run()); code != 127 {
		t.Fatalf("missing program: exit %d", code)
	}
}

// SIGTERM to PID 1 reaches the command (which does not handle it) at once.
func TestMainScriptForwardsSIGTERM(t *testing.T) {
	cmd := runMain(t, "", "", "sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the script start the command
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(t, err); code != 143 {
			t.Fatalf("exit %d, want 143 (the command's death by SIGTERM)", code)
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("SIGTERM did not end the main process")
	}
}

// A held command starts only once the gate file exists; SIGTERM ends the
// wait too.
func TestMainScriptHolds(t *testing.T) {
	dir := t.TempDir()
	gate, marker := filepath.Join(dir, "gate"), filepath.Join(dir, "started")
	cmd := runMain(t, gate, "", "sh", "-c", `: > "$0"`, marker)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command started before the gate opened")
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if code := exitCode(t, err); code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the command did not start once the gate opened")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the command did not run")
	}

	held := runMain(t, filepath.Join(dir, "never"), "", "true")
	if err := held.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	_ = held.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, held.Wait()); code != 143 {
		t.Fatalf("held and terminated: exit %d", code)
	}
}

func TestWaitForMainExit(t *testing.T) {
	s := mainSpec()
	pod := s.Pod()
	pod.UID = "u1"
	cs := fakeCluster(pod)
	ctx := context.Background()
	watching := fakecluster.Watching(cs, "pods")
	go func() {
		<-watching
		p := pod.DeepCopy()
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 7}}}}
		_, _ = cs.CoreV1().Pods("ns").UpdateStatus(ctx, p, metav1.UpdateOptions{})
	}()
	code, err := WaitForMainExit(ctx, cs, pod, time.Minute)
	if err != nil || code != 7 {
		t.Fatalf("code %d, err %v", code, err)
	}
	// Deleted meanwhile: a clear error, not a hang.
	if err := cs.CoreV1().Pods("ns").Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := WaitForMainExit(ctx, cs, pod, time.Minute); err == nil || !strings.Contains(err.Error(), "was deleted") {
		t.Fatalf("deleted: %v", err)
	}
}
