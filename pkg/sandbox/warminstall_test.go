package sandbox

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestWarmInstallPod(t *testing.T) {
	s := NewSpec("", "ns")
	s.Name = "m"
	s.WarmInstall = "npm install --global tool@1"
	pod := s.Pod()
	c := &pod.Spec.Containers[0]
	if !slices.Equal(c.Command, warmInstallCommand(0, s.WarmInstall)) {
		t.Fatalf("command %q", c.Command)
	}
	p := c.StartupProbe
	if p == nil || p.Exec == nil || !slices.Equal(p.Exec.Command, []string{"/bin/sh", "-c", ": < " + InstalledFile}) ||
		p.PeriodSeconds != 5 || p.TimeoutSeconds != 1 || p.SuccessThreshold != 1 || p.PeriodSeconds*p.FailureThreshold != WarmInstallTimeout {
		t.Fatalf("startup probe %+v", p)
	}
	if got, ok := WarmInstalled(pod); !ok || got != s.WarmInstall {
		t.Fatalf("WarmInstalled = %q, %v", got, ok)
	}

	// A Pod without one: no probe, nothing installed; nor one whose probe
	// an admission webhook removed (Ready then says nothing of the install).
	plain := NewSpec("p", "ns")
	if pp := plain.Pod(); pp.Spec.Containers[0].StartupProbe != nil || !slices.Equal(pp.Spec.Containers[0].Command, pid1Command(0)) {
		t.Fatalf("a plain sandbox changed: %+v", pp.Spec.Containers[0])
	} else if _, ok := WarmInstalled(pp); ok {
		t.Fatal("a plain sandbox reports a warm install")
	}
	c.StartupProbe = nil
	if _, ok := WarmInstalled(pod); ok {
		t.Fatal("a Pod without its startup probe reports a warm install")
	}
	if ch := AdmissionChanges(s.Pod(), pod); len(Weakening(ch)) != 1 || !strings.Contains(ch[0].String(), "startupProbe: asked ours, stored none") {
		t.Fatalf("a removed startup probe: %v", ch)
	}
	if ch := AdmissionChanges(s.Pod(), s.Pod()); len(ch) != 0 {
		t.Fatalf("the same Pod: %v", ch)
	}
}

// hostWarmInstall runs the warm install's PID 1 on this host, with its
// paths moved into a temporary directory.
func hostWarmInstall(t *testing.T, install string) (dir string, cmd *exec.Cmd, done chan error) {
	t.Helper()
	dir = t.TempDir()
	script := warmInstallScript + pid1Script
	for from, to := range map[string]string{
		InstalledFile: filepath.Join(dir, "installed"), InstallLogFile: filepath.Join(dir, "install.log"),
		"/dev/termination-log": filepath.Join(dir, "termination-log"),
	} {
		script = strings.ReplaceAll(script, from, to)
	}
	cmd = exec.Command("/bin/sh", "-c", script, pid1Name, "0", filepath.Join(dir, "idle"), install)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return dir, cmd, done
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
	}
}

func TestWarmInstallRunsBeforeTheLoop(t *testing.T) {
	dir, cmd, done := hostWarmInstall(t, `echo "installing as $0"; echo done > tool`)
	waitForFile(t, filepath.Join(dir, "installed"))
	if b, _ := os.ReadFile(filepath.Join(dir, "tool")); string(b) != "done\n" {
		t.Fatalf("the install did not run in the working directory: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "install.log")); !strings.Contains(string(b), "installing as /bin/sh") {
		t.Fatalf("install log %q", b)
	}
	select {
	case err := <-done:
		t.Fatalf("PID 1 ended after the install: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Fatalf("SIGTERM after the install: %v", err)
	}
}

func TestWarmInstallFailureEndsPID1(t *testing.T) {
	dir, _, done := hostWarmInstall(t, `echo "npm ERR! 404 no such package"; exit 3`)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("PID 1 ended with %v, want the install's exit code 3", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("PID 1 did not end after a failed install")
	}
	msg, _ := os.ReadFile(filepath.Join(dir, "termination-log"))
	if !strings.HasPrefix(string(msg), InstallFailedPrefix+" exit code 3") || !strings.Contains(string(msg), "npm ERR! 404 no such package") {
		t.Fatalf("termination message %q", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "installed")); err == nil {
		t.Fatal("a failed install left the marker")
	}

	// As the kubelet reports it: the member cannot start, and says why.
	ms := NewSpec("m", "ns")
	pod := ms.Pod()
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Message: string(msg)}}}}
	if got := InstallFailure(pod); got != strings.TrimSpace(string(msg)) {
		t.Fatalf("InstallFailure = %q", got)
	}
	_, err := Started(pod, "m")
	var se *StartError
	if !errors.As(err, &se) || se.Reason != ReasonInstallFailed || !strings.Contains(err.Error(), "npm ERR! 404") ||
		!strings.Contains(err.Error(), "it usually needs egress to a package registry (network, profile)") {
		t.Fatalf("Started: %v", err)
	}
	pod.Status.ContainerStatuses[0].State.Terminated.Message = "killed"
	if InstallFailure(pod) != "" {
		t.Fatal("another exit read as an install failure")
	}
}

// A member deleted while it installs ends at once, not after the install.
func TestWarmInstallEndsOnSIGTERM(t *testing.T) {
	dir, cmd, done := hostWarmInstall(t, `echo started > started; sleep 60`)
	waitForFile(t, filepath.Join(dir, "started"))
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("SIGTERM during the install: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PID 1 waited for the install after SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(dir, "installed")); err == nil {
		t.Fatal("an interrupted install left the marker")
	}
}
