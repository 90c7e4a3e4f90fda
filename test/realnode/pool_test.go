package realnode

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// TTL, idle timeout and pools on a real kubelet. The simulated node of the
// e2e suite enforces neither activeDeadlineSeconds (the kubelet does) nor
// the idle timeout (PID 1 does, in a container kwok never runs): there the
// end of a sandbox is written into its status by hand; here the kubelet
// and PID 1 really end it.

// small sandboxes: several of these fit the guest at once.
var small = []string{"--cpu", "100m", "--memory", "64Mi", "--ephemeral-storage", "64Mi"}

const endTimeout = 8 * time.Minute

// slowTimeout: a sandbox to Running under TCG beside other work.
const slowTimeout = 8 * time.Minute

// createSlowly is createSandbox with slowTimeout.
func (s *suite) createSlowly(ctx context.Context, t *testing.T, name string, flags ...string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, slowTimeout)
	defer cancel()
	r := s.pluginRun(c, "", append([]string{"create", name, "-n", s.namespace, "--timeout", slowTimeout.String()}, flags...)...)
	if r.code != 0 {
		t.Fatalf("create %s %v: %s\n%s", name, flags, r, s.node.Diagnostics())
	}
	record("plugin: create --wait (→ Running)", r.took)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		_ = s.pluginRun(c, "", "delete", name, "-n", s.namespace, "--wait", "--ignore-not-found")
	})
}

// waitEnded waits until sandbox name's Pod has finished, and returns it.
func (s *suite) waitEnded(ctx context.Context, t *testing.T, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := poll(ctx, endTimeout, func() (bool, error) {
		pod = s.sandboxPod(ctx, t, name)
		return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed, nil
	})
	if err != nil {
		t.Fatalf("sandbox %s did not end within %s: %s (%v)\n%s", name, endTimeout, sandbox.Describe(pod), err, s.node.Diagnostics())
	}
	return pod
}

func TestTTLAndIdleTimeoutStopASandbox(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	t0 := time.Now()
	// The deadline counts from the Pod's start, which under TCG on a busy
	// machine can take minutes: the TTL sandbox is not waited for — it
	// ends by its deadline whether or not its container got to run.
	if r := s.pluginRun(ctx, "", append([]string{"create", "rn-ttl", "-n", s.namespace, "--wait=false", "--ttl", "30s"}, small...)...); r.code != 0 {
		t.Fatalf("create rn-ttl: %s", r)
	}
	t.Cleanup(func() {
		_ = s.pluginRun(context.Background(), "", "delete", "rn-ttl", "-n", s.namespace, "--ignore-not-found")
	})
	s.createSlowly(ctx, t, "rn-idle", append(small, "--idle-timeout", "60s")...)

	// Busy for longer than its idle timeout: PID 1 sees the exec'd process
	// in /proc and keeps the sandbox.
	c, cancel := context.WithTimeout(ctx, slowTimeout)
	defer cancel()
	if r := s.pluginRun(c, "", "exec", "rn-idle", "-n", s.namespace, "--", "sleep", "75"); r.code != 0 {
		t.Fatalf("exec sleep 75 in the idle sandbox: %s", r)
	}
	if pod := s.sandboxPod(ctx, t, "rn-idle"); pod.Status.Phase != corev1.PodRunning {
		t.Fatalf("the sandbox stopped while a command ran in it: %s", sandbox.Describe(pod))
	}

	ttl := s.waitEnded(ctx, t, "rn-ttl")
	if !sandbox.Expired(ttl) {
		t.Fatalf("the TTL sandbox ended, but not by its deadline: %s %s", ttl.Status.Phase, ttl.Status.Reason)
	}
	record("realnode: --ttl 30s: create → DeadlineExceeded", time.Since(t0))
	t1 := time.Now()
	idle := s.waitEnded(ctx, t, "rn-idle")
	if !sandbox.StoppedIdle(idle) || idle.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("the idle sandbox ended, but not for being idle: %s %+v", idle.Status.Phase, idle.Status.ContainerStatuses)
	}
	record("realnode: --idle-timeout 60s: last exec → stopped", time.Since(t1))

	r := s.pluginRun(ctx, "", "list", "-n", s.namespace)
	if !strings.Contains(r.stdout, "expired") {
		t.Errorf("list does not show the expired sandbox:\n%s", r)
	}
	r = s.pluginRun(ctx, "", "gc", "-n", s.namespace)
	if r.code != 0 || !strings.Contains(r.stdout, "sandbox/rn-ttl deleted (expired: its TTL (30s) ran out)") ||
		!strings.Contains(r.stdout, "sandbox/rn-idle deleted (idle: it stopped itself after 1m0s with nothing running)") {
		t.Fatalf("gc:\n%s", r)
	}
}

// A claimed sandbox on a real kubelet: its secret arrives through the
// memory-backed emptyDir, its idle timeout (set after its PID 1 started)
// and its claim-time TTL are both enforced.
func TestPoolClaimOnARealNode(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	const secret = "rn-claim-secret-'value'"
	os.Setenv("RN_POOL_SECRET", secret)
	defer os.Unsetenv("RN_POOL_SECRET")
	c, cancel := context.WithTimeout(ctx, slowTimeout)
	defer cancel()
	r := s.pluginRun(c, "", append([]string{"pool", "create", "rn-pool", "--size", "1", "-n", s.namespace, "--timeout", slowTimeout.String()}, small...)...)
	if r.code != 0 {
		t.Fatalf("pool create: %s\n%s", r, s.node.Diagnostics())
	}
	record("realnode: pool create --size 1 (→ ready)", r.took)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		_ = s.pluginRun(c, "", "pool", "delete", "rn-pool", "-n", s.namespace, "--ignore-not-found")
		for _, n := range []string{"rn-claim", "rn-claim-ttl"} {
			_ = s.pluginRun(c, "", "delete", n, "-n", s.namespace, "--ignore-not-found")
		}
	})

	r = s.pluginRun(ctx, "", "create", "rn-claim", "--pool", "rn-pool", "-n", s.namespace, "--secret-env", "RN_POOL_SECRET", "--idle-timeout", "20s")
	if r.code != 0 || r.stdout != "sandbox/rn-claim created (claimed warm from pool rn-pool)\n" {
		t.Fatalf("claim: %s", r)
	}
	record("realnode: create --pool (claim, secret delivered)", r.took)
	pod := s.sandboxPod(ctx, t, "rn-claim")
	file := pod.Annotations[sandbox.AnnotationEnvFile]
	r = s.sandboxExec(ctx, "rn-claim", "", "sh", "-c", `printf '%s|' "$RN_POOL_SECRET"; stat -c %a "$1"; grep " /run/agentkernel " /proc/mounts`, "sh", file)
	if r.code != 0 || !strings.HasPrefix(r.stdout, secret+"|600\n") || !strings.Contains(r.stdout, " tmpfs ") {
		t.Fatalf("in the claimed sandbox: secret|mode, then the mount of its directory:\n%s", r)
	}
	checkHardened(t, parseStatus(t, s.sandboxExec(ctx, "rn-claim", "", "cat", "/proc/self/status").stdout))

	// The idle timeout came with the claim, after PID 1 started.
	t1 := time.Now()
	ended := s.waitEnded(ctx, t, "rn-claim")
	if !sandbox.StoppedIdle(ended) {
		t.Fatalf("the claimed sandbox ended, but not for being idle: %s %+v", ended.Status.Phase, ended.Status.ContainerStatuses)
	}
	record("realnode: claimed --idle-timeout 20s: last exec → stopped", time.Since(t1))

	// A TTL given at claim time: activeDeadlineSeconds set on a running Pod.
	c2, cancel2 := context.WithTimeout(ctx, slowTimeout)
	defer cancel2()
	r = s.pluginRun(c2, "", "create", "rn-claim-ttl", "--pool", "rn-pool", "-n", s.namespace, "--ttl", "20s", "--pool-wait", "--timeout", slowTimeout.String())
	if r.code != 0 || !strings.Contains(r.stdout, "claimed warm") {
		t.Fatalf("claim with --ttl: %s", r)
	}
	claimed := s.sandboxPod(ctx, t, "rn-claim-ttl")
	if claimed.Spec.ActiveDeadlineSeconds == nil {
		t.Fatal("the claim set no deadline")
	}
	if ended := s.waitEnded(ctx, t, "rn-claim-ttl"); !sandbox.Expired(ended) {
		t.Fatalf("the claimed sandbox ended, but not by its deadline: %s %s", ended.Status.Phase, ended.Status.Reason)
	}

	// pool delete leaves both (finished) claimed sandboxes; gc takes them.
	if r := s.pluginRun(ctx, "", "pool", "delete", "rn-pool", "-n", s.namespace); r.code != 0 || !strings.Contains(r.stdout, "2 claimed kept") {
		t.Fatalf("pool delete: %s", r)
	}
	r = s.pluginRun(ctx, "", "gc", "-n", s.namespace)
	if r.code != 0 || !strings.Contains(r.stdout, "sandbox/rn-claim deleted (idle") || !strings.Contains(r.stdout, "sandbox/rn-claim-ttl deleted (expired") {
		t.Fatalf("gc: %s", r)
	}
	var left int
	if err := poll(ctx, time.Minute, func() (bool, error) {
		list, err := s.client.CoreV1().Pods(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: sandbox.LabelPool + "=rn-pool"})
		if err != nil {
			return false, err
		}
		left = len(list.Items)
		return left == 0, nil
	}); err != nil {
		t.Fatalf("%d pods of the pool left after pool delete and gc: %v", left, err)
	}
}
