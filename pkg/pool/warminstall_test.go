package pool

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

const install = "npm install --global tool@1"

func warmInstall(s *sandbox.Spec) { s.Agent, s.WarmInstall = "tool", install }

// failInstall plays the kubelet reporting that a member's PID 1 ended for
// its install (restartPolicy Never: the Pod has failed).
func failInstall(t *testing.T, tr *rvTracker, pod corev1.Pod) {
	t.Helper()
	if err := tryFailInstall(tr, pod); err != nil {
		t.Fatal(err)
	}
}

func tryFailInstall(tr *rvTracker, pod corev1.Pod) error {
	pod.Status = corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: sandbox.ContainerName,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1,
			Message: sandbox.InstallFailedPrefix + " exit code 1 (...):\nnpm ERR! 404 tool@1 is not in this registry\x1b[31m"}}}}}
	pod.ResourceVersion = ""
	return tr.Update(corev1.SchemeGroupVersion.WithResource("pods"), &pod, "ns")
}

// A pool made with a warm install: every member runs it at start, the
// PodTemplate shows it, a claim gets a member that ran it, and the
// claim's own Spec (a cold fallback's too) has none: credentials and a
// warm install never meet.
func TestPoolMembersInstallWhileWarm(t *testing.T) {
	cs, tr := poolCluster(t)
	p := newTestPool(t, cs, tr, "agents", 1, warmInstall)
	if got, ok := sandbox.WarmInstalled(&corev1.Pod{Spec: p.PodTemplate().Template.Spec}); !ok || got != install {
		t.Fatalf("the PodTemplate's install: %q %v", got, ok)
	}
	members := podsIn(t, cs, "ns")
	if len(members) != 1 {
		t.Fatalf("%d members", len(members))
	}
	if got, ok := sandbox.WarmInstalled(&members[0]); !ok || got != install {
		t.Fatalf("the member's install: %q %v", got, ok)
	}

	rec := &execRecorder{}
	claim := claimSpec("task")
	claim.Agent, claim.SecretEnvNames = "tool", []string{"TOOL_KEY"}
	a, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "agents", Exec: rec.execFor(t),
		CreateOptions: sandbox.CreateOptions{SecretValues: map[string]string{"TOOL_KEY": "k"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sandbox.WarmInstalled(a.Pod); !a.Warm || !ok || a.Spec.WarmInstall != "" {
		t.Fatalf("warm=%v installed=%v spec's install %q", a.Warm, ok, a.Spec.WarmInstall)
	}
	// The replacement is not ready: the next claim is cold, with its
	// credentials, and so without a warm install.
	a, err = Acquire(context.Background(), cs, claimSpecWith("cold", claim), AcquireOptions{Pool: "agents", Exec: rec.execFor(t),
		CreateOptions: sandbox.CreateOptions{SecretValues: map[string]string{"TOOL_KEY": "k"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sandbox.WarmInstalled(a.Pod); a.Warm || ok || a.Pod.Spec.Containers[0].StartupProbe != nil || len(a.Pod.Spec.Containers[0].EnvFrom) != 1 {
		t.Fatalf("cold: warm=%v installed=%v %+v", a.Warm, ok, a.Pod.Spec.Containers[0])
	}
}

func claimSpecWith(name string, like *sandbox.Spec) *sandbox.Spec {
	c := like.Clone()
	c.Name = name
	return &c
}

// A member whose probe is not the pool's (its readiness would not mean
// installed) is not trusted, and so never claimed.
func TestMemberWithoutItsStartupProbeIsNotClaimed(t *testing.T) {
	cs, tr := poolCluster(t)
	p := newTestPool(t, cs, tr, "agents", 1, warmInstall)
	m := podsIn(t, cs, "ns")[0]
	m.Spec.Containers[0].StartupProbe = nil
	m.ResourceVersion = ""
	if err := tr.Update(corev1.SchemeGroupVersion.WithResource("pods"), &m, "ns"); err != nil {
		t.Fatal(err)
	}
	_, err := trustMember(context.Background(), cs, p, &m)
	if !isUntrusted(err) || !strings.Contains(err.Error(), "its startup probe differs") {
		t.Fatalf("trust: %v", err)
	}
	a, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "agents"})
	if err != nil || a.Warm || a.Pod.Name == m.Name {
		t.Fatalf("claimed %v (warm=%v): %v", a.Pod.Name, a.Warm, err)
	}
}

// A member whose install failed is never claimed; pool status and the
// claim's reason for going cold say why, in one sanitised line; a
// reconcile replaces it.
func TestMemberWhoseInstallFailedIsNotClaimed(t *testing.T) {
	cs, tr := poolCluster(t)
	p := newTestPool(t, cs, tr, "agents", 1, warmInstall)
	failed := podsIn(t, cs, "ns")[0]
	failInstall(t, tr, failed)
	want := "InstallFailed: exit code 1 (...): npm ERR! 404 tool@1 is not in this registry?[31m"

	st, err := PoolStatuses(context.Background(), cs, []*Pool{p})
	if err != nil || st[0].Ready != 0 || len(st[0].Problems) != 1 || st[0].Problems[0] != want {
		t.Fatalf("status %+v: %v", st[0], err)
	}
	a, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "agents"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Warm || a.Pod.Name == failed.Name || a.Why != `pool "agents" has no ready member (0 starting: `+want+`)` {
		t.Fatalf("warm=%v pod=%s why=%q", a.Warm, a.Pod.Name, a.Why)
	}
	if _, ok := sandbox.WarmInstalled(a.Pod); ok {
		t.Fatal("the cold sandbox has a warm install")
	}
	st2, err := Reconcile(context.Background(), cs, p)
	if err != nil || st2.Removed != 1 || st2.Created != 1 || len(st2.Problems) != 1 || st2.Problems[0] != want {
		t.Fatalf("reconcile %+v: %v", st2, err)
	}
}

// pool create, and a claim that waits, fail at once with the install's
// failure: a replacement would fail alike.
func TestWaitingForAPoolFailsOnAFailedInstall(t *testing.T) {
	cs, tr := poolCluster(t)
	p, _ := NewPool("agents", func() sandbox.Spec { s := sandbox.NewSpec("agents", "ns"); warmInstall(&s); return s }(), 1)
	if _, err := CreatePool(context.Background(), cs, p, PoolOptions{}); err != nil {
		t.Fatal(err)
	}
	failInstall(t, tr, podsIn(t, cs, "ns")[0])
	_, err := WaitForPool(context.Background(), cs, p, time.Minute, nil)
	var se *memberStartErr
	if !errors.As(err, &se) || !strings.Contains(err.Error(), `pool "agents" in namespace "ns" cannot start its members: InstallFailed (pod agentkernel-pool-agents-`) ||
		!strings.Contains(err.Error(), "npm ERR! 404") || !strings.Contains(err.Error(), "it usually needs egress to a package registry") {
		t.Fatalf("WaitForPool: %v", err)
	}
	// A claim that waits tops the pool up first (the failed member is
	// replaced), then fails on the replacement's failed install.
	err = untilFails(t, "the waiting claim", func() error {
		_, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "agents", WaitForMember: true, CreateOptions: sandbox.CreateOptions{Timeout: time.Minute}})
		return err
	}, func() {
		for _, pod := range podsIn(t, cs, "ns") {
			if pod.Status.Phase != corev1.PodFailed && pod.DeletionTimestamp == nil {
				_ = tryFailInstall(tr, pod) // gone already, once removed
			}
		}
	})
	if !strings.Contains(err.Error(), "cannot start its members: InstallFailed") {
		t.Fatalf("waiting claim: %v", err)
	}
	for _, pod := range podsIn(t, cs, "ns") {
		if pod.Labels[sandbox.LabelSandbox] != "" {
			t.Fatalf("a waiting claim took %s", pod.Name)
		}
	}
}

// pool create whose members' install fails fails at once with the
// install's words, exit status aside, and leaves nothing behind.
func TestCreatePoolWhoseInstallFailsLeavesNothing(t *testing.T) {
	cs, tr := poolCluster(t)
	spec := sandbox.NewSpec("agents", "ns")
	warmInstall(&spec)
	p, _ := NewPool("agents", spec, 2)
	err := untilFails(t, "pool create", func() error {
		_, err := CreatePool(context.Background(), cs, p, PoolOptions{Wait: true, Timeout: time.Minute})
		return err
	}, func() {
		for _, pod := range podsIn(t, cs, "ns") {
			if len(pod.Spec.SchedulingGates) == 0 && pod.Status.Phase != corev1.PodFailed {
				_ = tryFailInstall(tr, pod) // gone already, once pool create cleans up
			}
		}
	})
	if !strings.Contains(err.Error(), `pool "agents" in namespace "ns" cannot start its members: InstallFailed`) || !strings.Contains(err.Error(), "npm ERR! 404") {
		t.Fatalf("err = %v", err)
	}
	if pods := podsIn(t, cs, "ns"); len(pods) != 0 {
		t.Fatalf("left %d pods", len(pods))
	}
	if ts, _ := cs.CoreV1().PodTemplates("ns").List(context.Background(), metav1.ListOptions{}); len(ts.Items) != 0 {
		t.Fatal("left the pool's PodTemplate")
	}
}
