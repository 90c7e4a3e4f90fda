package realnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The plugin's own sandboxes on the real kubelet: everything here goes
// through kubectl-agentkernel, nothing through hand-written pods.

const sandboxLabel = "agentkernel/sandbox"

func (s *suite) createSandbox(ctx context.Context, t *testing.T, name string, flags ...string) *corev1.Pod {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, podRunningTimeout)
	defer cancel()
	r := s.pluginRun(c, "", append([]string{"create", name, "-n", s.namespace, "--wait"}, flags...)...)
	if r.code != 0 {
		t.Fatalf("kubectl agentkernel create %s %v: %s\n%s", name, flags, r, s.node.Diagnostics())
	}
	record("plugin: create --wait (→ Running)", r.took)
	logSpeed(t, "plugin-create-running", r.took)
	t.Cleanup(func() {
		// Wait: a default sandbox asks for 1 CPU and 1Gi, so the next
		// test's sandbox needs this one's resources back.
		c, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		_ = s.pluginRun(c, "", "delete", name, "-n", s.namespace, "--wait", "--ignore-not-found")
	})
	pod := s.sandboxPod(ctx, t, name)
	if pod.Status.Phase != corev1.PodRunning {
		t.Fatalf("create --wait returned but sandbox %s is %s", name, pod.Status.Phase)
	}
	return pod
}

// sandboxPod finds the sandbox's pod by its label.
func (s *suite) sandboxPod(ctx context.Context, t *testing.T, name string) *corev1.Pod {
	t.Helper()
	list, err := s.client.CoreV1().Pods(s.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{sandboxLabel: name}).String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("want one pod labelled %s=%s, found %d", sandboxLabel, name, len(list.Items))
	}
	return &list.Items[0]
}

func (s *suite) sandboxExec(ctx context.Context, name string, stdin string, args ...string) result {
	c, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	flags := []string{"exec", name, "-n", s.namespace}
	if stdin != "" {
		flags = append(flags, "-i")
	}
	r := s.pluginRun(c, stdin, append(append(flags, "--"), args...)...)
	record("plugin: exec", r.took)
	return r
}

// TestSandboxDefault: the plugin's default sandbox runs under "restricted"
// and is hardened where it counts, in the kernel's view of its process.
func TestSandboxDefault(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	const name = "sb-default"
	pod := s.createSandbox(ctx, t, name)
	t.Logf("sandbox pod %s on node %s, image %s", pod.Name, pod.Spec.NodeName, pod.Spec.Containers[0].Image)
	if pod.Spec.NodeName != s.node.Name {
		t.Errorf("sandbox runs on %q, want the real node %q", pod.Spec.NodeName, s.node.Name)
	}

	for range speedSamples {
		if r := s.sandboxExec(ctx, name, "", "true"); r.code != 0 {
			t.Errorf("exec true: %s", r)
		} else {
			logSpeed(t, "plugin-exec-true", r.took)
		}
	}
	r := s.sandboxExec(ctx, name, "", "cat", "/proc/self/status")
	if r.code != 0 {
		t.Fatalf("exec cat /proc/self/status: %s", r)
	}
	checkHardened(t, parseStatus(t, r.stdout))
	if r := s.sandboxExec(ctx, name, "", "id", "-u"); r.code != 0 || strings.TrimSpace(r.stdout) == "0" || strings.TrimSpace(r.stdout) == "" {
		t.Errorf("id -u in the sandbox: %s", r)
	}
	// The default profile (restrictive) has a read-only root.
	s.checkRootReadOnly(ctx, t, name, true)

	// want -1: any non-zero code.
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"true"}, 0},
		{[]string{"false"}, 1},
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"sh", "-c", "exit 255"}, 255},
		{[]string{"/no/such/command"}, -1},
	} {
		r := s.sandboxExec(ctx, name, "", tc.args...)
		if (tc.want == -1 && r.code == 0) || (tc.want != -1 && r.code != tc.want) {
			t.Errorf("exec %v: exit %d, want %d (-1: non-zero): %s", tc.args, r.code, tc.want, r)
		}
	}
	if r := s.sandboxExec(ctx, name, "through stdin\n", "cat"); r.stdout != "through stdin\n" {
		t.Errorf("stdin through exec: %s", r)
	}

	// cp both ways.
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	content := randomText(t)
	if err := os.WriteFile(in, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.pluginRun(ctx, "", "cp", in, name+":/tmp/in.txt", "-n", s.namespace); r.code != 0 {
		t.Fatalf("cp in: %s", r)
	}
	if r := s.sandboxExec(ctx, name, "", "cat", "/tmp/in.txt"); r.stdout != content {
		t.Errorf("after cp in the sandbox has %q, want %q", r.stdout, content)
	}
	out := filepath.Join(dir, "out.txt")
	if r := s.pluginRun(ctx, "", "cp", name+":/tmp/in.txt", out, "-n", s.namespace); r.code != 0 {
		t.Fatalf("cp out: %s", r)
	}
	if b, _ := os.ReadFile(out); string(b) != content {
		t.Errorf("cp out gave %q, want %q", b, content)
	}

	// Delete until gone: the sandbox's PID 1 must exit on SIGTERM.
	took, code := s.deleteAndWait(ctx, t, pod.Name, func() error {
		c, cancel := context.WithTimeout(ctx, deleteTimeout)
		defer cancel()
		r := s.pluginRun(c, "", "delete", name, "-n", s.namespace, "--wait")
		record("plugin: delete --wait", r.took)
		if r.code != 0 {
			t.Errorf("delete --wait: %s", r)
		}
		return nil
	})
	record("plugin: delete → pod gone", took)
	logSpeed(t, "plugin-delete-gone", took)
	t.Logf("delete → gone in %s (grace period %ds, container exit code %d)", took.Round(100*time.Millisecond),
		ptrOr(pod.Spec.TerminationGracePeriodSeconds, 30), code)
	// 137: SIGKILL at the end of the grace period. Under TCG the teardown
	// after the exit (sandbox stop, CNI, volumes) alone takes 5-10 s, so the
	// time says little: TestSandboxReadOnly signals PID 1 directly.
	if code == 137 {
		t.Errorf("the sandbox's PID 1 did not exit on SIGTERM: killed after the grace period")
	}
}

// checkPID1ExitsOnSIGTERM sends SIGTERM to the sandbox's PID 1 from inside
// (same uid) and expects the container to stop within seconds: a PID 1
// without a handler would ignore it (the kernel drops default-action signals
// to a namespace's init), and every delete would wait out the grace period.
func (s *suite) checkPID1ExitsOnSIGTERM(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	pod := s.sandboxPod(ctx, t, name)
	t0 := time.Now()
	// When PID 1 exits, the kernel kills everything else in the container,
	// the kill command among them: 137 is as good as 0 here.
	if r := s.sandboxExec(ctx, name, "", "kill", "-TERM", "1"); r.code != 0 && r.code != 137 {
		t.Fatalf("kill -TERM 1 in the sandbox: %s", r)
	}
	var state string
	err := poll(ctx, 20*time.Second, func() (bool, error) {
		p, err := s.client.CoreV1().Pods(s.namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cs := range p.Status.ContainerStatuses {
			term := cs.State.Terminated
			if term == nil {
				term = cs.LastTerminationState.Terminated
			}
			if term != nil {
				state = fmt.Sprintf("exit code %d (%s)", term.ExitCode, term.Reason)
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("PID 1 of sandbox %s did not stop on SIGTERM: %v", name, err)
	}
	record("plugin: PID 1 SIGTERM → container stopped (seen in API)", time.Since(t0))
	t.Logf("PID 1 stopped on SIGTERM: %s", state)
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// checkRootReadOnly writes to /var/tmp, a world-writable directory of the
// image's root filesystem (not a volume): EROFS when the root is read-only,
// success otherwise. The sandbox's own writable directories must work either
// way.
func (s *suite) checkRootReadOnly(ctx context.Context, t *testing.T, name string, readOnly bool) {
	t.Helper()
	r := s.sandboxExec(ctx, name, "", "touch", "/var/tmp/probe")
	switch {
	case readOnly && (r.code == 0 || !strings.Contains(r.stderr, "Read-only file system")):
		t.Errorf("writing the root filesystem of a read-only sandbox: %s", r)
	case !readOnly && r.code != 0:
		t.Errorf("writing the root filesystem of a writable sandbox: %s", r)
	}
	if r := s.sandboxExec(ctx, name, "", "touch", "/probe"); r.code == 0 {
		t.Errorf("a non-root sandbox could create /probe: %s", r)
	}
	for _, d := range []string{"/workspace", "/tmp", "/home/sandbox"} {
		if r := s.sandboxExec(ctx, name, "", "sh", "-c", "echo ok > "+d+"/probe && cat "+d+"/probe"); r.code != 0 || r.stdout != "ok\n" {
			t.Errorf("writing %s in sandbox %s: %s", d, name, r)
		}
	}
}

// TestSandboxReadOnly: --read-only is obeyed whichever way the profile
// leans: a permissive sandbox made read-only, a restrictive one made writable.
func TestSandboxReadOnly(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		flags    []string
		readOnly bool
	}{
		{"sb-ro", []string{"--profile", "permissive", "--read-only"}, true},
		{"sb-rw", []string{"--profile", "restrictive", "--read-only=false"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := s.createSandbox(ctx, t, tc.name, tc.flags...)
			sc := pod.Spec.Containers[0].SecurityContext
			if sc == nil || ptrOr(sc.ReadOnlyRootFilesystem, false) != tc.readOnly {
				t.Errorf("%v: readOnlyRootFilesystem in the pod spec: %+v", tc.flags, sc)
			}
			s.checkRootReadOnly(ctx, t, tc.name, tc.readOnly)
			r := s.sandboxExec(ctx, tc.name, "", "cat", "/proc/self/status")
			checkHardened(t, parseStatus(t, r.stdout))
			s.checkPID1ExitsOnSIGTERM(ctx, t, tc.name)
		})
	}
}

// TestSandboxNetwork: the policy agent in the guest enforces the plugin's
// NetworkPolicies. A default (no network) sandbox and a moderate one (egress
// to public addresses only) cannot reach a pod in the cluster, while an
// unfenced pod beside them can, so the failure is the policy's doing.
func TestSandboxNetwork(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	ip := s.startServer(ctx, t, "sb-net-server")
	s.startPod(ctx, t, hardenedPod("sb-net-control", SandboxImage, sleeper, nil))
	if ok, r := s.canConnect(ctx, false, "sb-net-control", ip); !ok {
		t.Fatalf("the unfenced control pod cannot reach the server: %s", r)
	}
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"sb-nonet", nil},
		{"sb-egress", []string{"--profile", "moderate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.createSandbox(ctx, t, tc.name, tc.flags...)
			if !s.fenced(ctx, t, tc.name) {
				t.Fatalf("no NetworkPolicy selects %s=%s", sandboxLabel, tc.name)
			}
			// The plugin creates the policy before the pod: the very first
			// connection must already fail.
			if ok, r := s.canConnect(ctx, true, tc.name, ip); ok {
				t.Errorf("sandbox %s %v reached a pod in the cluster (%s): %s", tc.name, tc.flags, ip, r)
			}
			if ok, r := s.canConnect(ctx, false, "sb-net-control", ip); !ok {
				t.Errorf("meanwhile the control pod lost the server too: %s", r)
			}
		})
	}
}

func (s *suite) fenced(ctx context.Context, t *testing.T, name string) bool {
	t.Helper()
	policies, err := s.client.NetworkingV1().NetworkPolicies(s.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range policies.Items {
		if p.Spec.PodSelector.MatchLabels[sandboxLabel] == name {
			return true
		}
	}
	return false
}
