package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// testLog sends progress lines to t.Log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func ptrTo[T any](v T) *T { return &v }

// hardenedPod passes PodSecurity "restricted".
func hardenedPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptrTo(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptrTo(true),
				RunAsUser:      ptrTo(int64(1000)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:    "main",
				Image:   "registry.invalid/sandbox:never-pulled",
				Command: []string{"sleep", "infinity"},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptrTo(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// testBinaries returns the built binaries, building them when the test's
// deadline leaves room for a cold build.
func testBinaries(t *testing.T) *Binaries {
	t.Helper()
	b, err := Built(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b != nil {
		return b
	}
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) < 45*time.Minute {
		t.Fatal("the control-plane binaries are not built, and a cold build takes ~25-35 min on 2 cores: run `go run ./test/cluster build` first, or use go test -timeout 60m")
	}
	if b, err = Build(context.Background(), testLog{t}); err != nil {
		t.Fatal(err)
	}
	return b
}

// adminClient is a clientset on c as its admin.
func adminClient(t *testing.T, c *Cluster) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// waitRunning waits up to a minute for a Pod to be Running, and returns it.
func waitRunning(ctx context.Context, t *testing.T, client kubernetes.Interface, namespace, name string) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not Running after a minute: %v %+v", name, err, p.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startControlPlaneTest skips t with skipWhy under -short (what it would
// start, and for how long), else gives it a context that ends after timeout
// and the built binaries.
func startControlPlaneTest(t *testing.T, timeout time.Duration, skipWhy string) (context.Context, *Binaries) {
	t.Helper()
	if testing.Short() {
		t.Skip(skipWhy)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx, testBinaries(t)
}

// TestCluster starts the real control plane with kwok and checks what the
// e2e suite relies on: PodSecurity, pods running on the kwok node, exec exit
// codes and stdin through the real exec protocol, the unprivileged sandbox,
// the no-tar pod, and a Down that leaves no process behind.
func TestCluster(t *testing.T) {
	ctx, b := startControlPlaneTest(t, 10*time.Minute, "starts etcd, kube-apiserver, controller-manager, scheduler and kwok (binaries from `go run ./test/cluster build`, ~25 min when nothing is cached); skipped with -short")

	upStart := time.Now()
	c, err := Up(ctx, b, Options{Kwok: true, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Up took %s", time.Since(upStart).Round(time.Millisecond))
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			if err := c.Down(); err != nil {
				t.Error(err)
			}
		}
	})

	client := adminClient(t, c)

	kubectl := func(t *testing.T, stdin string, args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, b.Kubectl, append([]string{"--kubeconfig", c.AdminKubeconfig}, args...)...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("kubectl %v did not finish within 30s (stdout %q, stderr %q)", args, out.String(), errOut.String())
		}
		var exitErr *exec.ExitError
		switch {
		case err == nil:
			return out.String(), errOut.String(), 0
		case errors.As(err, &exitErr):
			return out.String(), errOut.String(), exitErr.ExitCode()
		default:
			t.Fatalf("kubectl %v: %v", args, err)
			return "", "", -1
		}
	}

	t.Run("version", func(t *testing.T) {
		v, err := client.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v.GitVersion != KubernetesVersion {
			t.Errorf("server reports %s, want %s", v.GitVersion, KubernetesVersion)
		}
		out, _, code := kubectl(t, "", "version", "--client", "-o", "json")
		if code != 0 || !strings.Contains(out, `"gitVersion": "`+KubernetesVersion+`"`) {
			t.Errorf("kubectl version --client: %d %s", code, out)
		}
	})

	const ns = "e2e-restricted"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   ns,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("privileged pod is rejected", func(t *testing.T) {
		pod := hardenedPod("privileged")
		pod.Spec.Containers[0].SecurityContext.Privileged = ptrTo(true)
		pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptrTo(true)
		_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
			t.Fatalf("want a PodSecurity rejection, got %v", err)
		}
	})

	for _, name := range []string{"sandbox", NoTarPodName} {
		start := time.Now()
		if _, err := client.CoreV1().Pods(ns).Create(ctx, hardenedPod(name), metav1.CreateOptions{}); err != nil {
			t.Fatalf("hardened pod %s rejected: %v", name, err)
		}
		if p := waitRunning(ctx, t, client, ns, name); p.Spec.NodeName != c.NodeName {
			t.Fatalf("pod %s runs on %q, want %q", name, p.Spec.NodeName, c.NodeName)
		}
		t.Logf("pod %s Running after %s", name, time.Since(start).Round(time.Millisecond))
	}

	podExec := func(t *testing.T, stdin, pod string, command ...string) (string, string, int) {
		t.Helper()
		args := []string{"exec", "-n", ns}
		if stdin != "" {
			args = append(args, "-i")
		}
		args = append(append(args, pod, "--"), command...)
		return kubectl(t, stdin, args...)
	}

	t.Run("exit codes", func(t *testing.T) {
		for _, tc := range []struct {
			command []string
			code    int
		}{
			{[]string{"true"}, 0},
			{[]string{"false"}, 1},
			{[]string{"sh", "-c", "exit 42"}, 42},
			{[]string{"no-such-command-anywhere"}, 127},
			{[]string{"/tmp"}, 126}, // execve of a directory: EACCES
			{[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		} {
			_, stderr, code := podExec(t, "", "sandbox", tc.command...)
			if code != tc.code {
				t.Errorf("%v exited %d, want %d (stderr %q)", tc.command, code, tc.code, stderr)
			}
		}
	})

	t.Run("stdin reaches EOF", func(t *testing.T) {
		out, stderr, code := podExec(t, "hello\n", "sandbox", "cat")
		if code != 0 || out != "hello\n" {
			t.Errorf("echo hello | kubectl exec -i -- cat: %d %q %q", code, out, stderr)
		}
	})

	t.Run("sandbox is unprivileged and private", func(t *testing.T) {
		out, _, code := podExec(t, "", "sandbox", "id", "-u")
		if code != 0 || strings.TrimSpace(out) != strconv.Itoa(SandboxUID) {
			t.Errorf("id -u in the sandbox: %d %q, want %d", code, out, SandboxUID)
		}
		// The uid as the host sees it, not as the namespace shows it.
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.KwokPID()))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "Uid:") {
				if f := strings.Fields(line); len(f) < 3 || f[1] != strconv.Itoa(SandboxUID) || f[2] != strconv.Itoa(SandboxUID) {
					t.Errorf("kwok runs as host %q, want uid %d", line, SandboxUID)
				}
			}
		}

		out, _, _ = podExec(t, "", "sandbox", "pwd")
		if want := path.Join(c.KwokWorkDir, ns, "sandbox"); strings.TrimSpace(out) != want {
			t.Errorf("work dir %q, want %q", strings.TrimSpace(out), want)
		}

		marker := fmt.Sprintf("/workspace/localcluster-test-%d", time.Now().UnixNano())
		if _, stderr, code := podExec(t, "", "sandbox", "sh", "-c", "echo data > "+marker); code != 0 {
			t.Fatalf("write %s in the sandbox: %d %s", marker, code, stderr)
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Errorf("%s written in the sandbox appeared on the host (stat: %v)", marker, err)
		}
		hostView, err := c.SandboxPath(marker)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(hostView); err != nil || string(b) != "data\n" {
			t.Errorf("reading %s: %q %v", hostView, b, err)
		}
		if _, _, code := podExec(t, "", "sandbox", "umount", "/tmp"); code == 0 {
			t.Error("the sandbox could unmount its /tmp")
		}
		if out, _, code := podExec(t, "", "sandbox", "ls", "/run/kwok"); code != 0 || strings.Contains(out, "kubeconfig") || strings.Contains(out, "tls.key") {
			t.Errorf("kwok's credentials are within the sandbox's reach: %d %q", code, out)
		}
	})

	t.Run("no tar in e2e-notar", func(t *testing.T) {
		_, stderr, code := podExec(t, "", NoTarPodName, "tar", "--version")
		if code != 127 {
			t.Errorf("tar --version in %s exited %d, want 127 (stderr %q)", NoTarPodName, code, stderr)
		}
		_, stderr, code = podExec(t, "", NoTarPodName, "sh", "-c", "tar --version")
		if code != 127 || !strings.Contains(stderr, "not found") {
			t.Errorf("sh -c 'tar --version' in %s: %d %q, want 127 and \"not found\"", NoTarPodName, code, stderr)
		}
		if out, stderr, code := podExec(t, "x\n", NoTarPodName, "sh", "-c", "mkdir -p /tmp/d && cat > /tmp/d/f && ls /tmp/d"); code != 0 || out != "f\n" {
			t.Errorf("basic tools in %s: %d %q %q", NoTarPodName, code, out, stderr)
		}
		if out, _, code := podExec(t, "", "sandbox", "tar", "--version"); code != 0 || !strings.Contains(out, "tar") {
			t.Errorf("tar in an ordinary pod: %d %q", code, out)
		}
	})

	t.Run("limited user has no rights", func(t *testing.T) {
		_, stderr, code := kubectl(t, "", "--kubeconfig", c.LimitedKubeconfig, "get", "pods", "-n", ns)
		if code == 0 || !strings.Contains(stderr, `User "`+LimitedUser+`" cannot list`) {
			t.Errorf("limited user listing pods: %d %q", code, stderr)
		}
	})

	t.Run("attach from another process", func(t *testing.T) {
		a, err := Attach(c.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if a.Server != c.Server || a.AdminKubeconfig != c.AdminKubeconfig || len(a.PIDs()) != len(c.PIDs()) || a.Running() != nil {
			t.Errorf("Attach: %+v, running: %v", a, a.Running())
		}
	})

	var total int64
	var rss []string
	for _, p := range c.procs {
		kib := vmRSSKiB(p.PID)
		total += kib
		rss = append(rss, fmt.Sprintf("%s=%dMiB", p.Name, kib/1024))
	}
	t.Logf("RSS after the tests: %s, total %d MiB", strings.Join(rss, " "), total/1024)

	pids := c.PIDs()
	downStart := time.Now()
	if err := c.Down(); err != nil {
		t.Fatal(err)
	}
	downDone = true
	t.Logf("Down took %s", time.Since(downStart).Round(time.Millisecond))
	for _, pid := range pids {
		if st, err := readStat(pid); err == nil && st.state != 'Z' {
			t.Errorf("pid %d still runs after Down (state %c)", pid, st.state)
		}
		if m := groupMembers(pid); len(m) > 0 {
			t.Errorf("process group %d still has members %v after Down", pid, m)
		}
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("Down kept its own temporary dir %s", c.Dir)
	}
}

// vmRSSKiB reads VmRSS of pid, 0 if unknown.
func vmRSSKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// TestUpFailureCleansUp: when a component dies during Up, the error names
// it with the end of its log and nothing Up started keeps running.
func TestUpFailureCleansUp(t *testing.T) {
	ctx, b := startControlPlaneTest(t, 2*time.Minute, "starts etcd from the built binaries; skipped with -short")
	broken := *b
	broken.APIServer = filepath.Join(t.TempDir(), "kube-apiserver")
	if err := os.WriteFile(broken.APIServer, []byte("#!/bin/sh\necho 'fake apiserver: failing on purpose' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err := Up(ctx, &broken, Options{Dir: dir, Kwok: true, Log: testLog{t}})
	if err == nil {
		t.Fatal("Up succeeded with a broken kube-apiserver")
	}
	t.Logf("Up failed as it should:\n%v", err)
	for _, want := range []string{"kube-apiserver", "fake apiserver: failing on purpose", dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	a, aerr := Attach(dir)
	if aerr != nil {
		t.Fatal(aerr)
	}
	if len(a.procs) != 0 {
		t.Errorf("state still lists processes after a failed Up: %v", a.PIDs())
	}
	out, _ := os.ReadFile(filepath.Join(dir, "logs", "etcd.log"))
	if len(out) == 0 {
		t.Error("etcd did not log anything; was it started?")
	}
	// etcd was started before the apiserver failed: it must be gone.
	if pids := findProcs(t, filepath.Join(dir, "etcd")); len(pids) > 0 {
		t.Errorf("etcd with data dir %s still runs: %v", dir, pids)
	}
}

// findProcs returns the live processes whose command line mentions s.
func findProcs(t *testing.T, s string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), s) {
			continue
		}
		if st, err := readStat(pid); err == nil && st.state != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestUpInPrivateDir: a Dir that kwok's uid cannot enter (t.TempDir() is
// below a 0700 directory) works, and Down keeps a Dir it was given.
func TestUpInPrivateDir(t *testing.T) {
	ctx, b := startControlPlaneTest(t, 5*time.Minute, "starts a real control plane and kwok; skipped with -short")
	dir := filepath.Join(t.TempDir(), "cluster")
	c, err := Up(ctx, b, Options{Dir: dir, Kwok: true, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Down(); err != nil {
			t.Error(err)
		}
	}()
	client := adminClient(t, c)
	if _, err := client.CoreV1().Pods("default").Create(ctx, hardenedPod("p"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(ctx, t, client, "default", "p")
	out, err := exec.CommandContext(ctx, b.Kubectl, "--kubeconfig", c.AdminKubeconfig, "exec", "p", "--", "sh", "-c", "echo ok").CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("exec: %v %q", err, out)
	}
	if err := c.Down(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "logs", "kwok.log")); err != nil {
		t.Errorf("Down removed a Dir it was given: %v", err)
	}
}
