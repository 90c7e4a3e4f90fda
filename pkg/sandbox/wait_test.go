package sandbox

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

func podWith(mutate func(*corev1.Pod)) *corev1.Pod {
	s := NewSpec("demo", "ns")
	p := s.Pod()
	mutate(p)
	return p
}

func pullFailure(reason, msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		waiting(reason)(p)
		p.Status.ContainerStatuses[0].State.Waiting.Message = msg
	}
}

func waiting(reason string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodPending
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "msg of " + reason}}}}
	}
}

func TestStarted(t *testing.T) {
	ready := func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	cases := map[string]struct {
		mutate     func(*corev1.Pod)
		started    bool
		failReason string
	}{
		"pending":         {func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }, false, ""},
		"creating":        {waiting("ContainerCreating"), false, ""},
		"ready":           {ready, true, ""},
		"running unready": {func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }, false, ""},
		"image not found": {pullFailure("ImagePullBackOff", `Back-off pulling image "nope:1": ErrImagePull: rpc error: failed to resolve reference "docker.io/library/nope:1": not found`), false, "ImagePullBackOff"},
		"unauthorized":    {pullFailure("ErrImagePull", "failed to authorize: 401 Unauthorized"), false, "ErrImagePull"},
		"rate limited":    {pullFailure("ErrImagePull", "unexpected status from HEAD request: 429 Too Many Requests; toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading"), false, ""},
		"pull timeout":    {pullFailure("ImagePullBackOff", "Back-off pulling image: ErrImagePull: dial tcp 1.2.3.4:443: i/o timeout"), false, ""},
		"config error":    {waiting("CreateContainerConfigError"), false, "CreateContainerConfigError"},
		"create error":    {pullFailure("CreateContainerError", `failed to create containerd task: failed to create shim task: OCI runtime create failed: exec: "nope": executable file not found in $PATH`), false, "CreateContainerError"},
		// The runtime was still unpacking a large image when the kubelet's
		// 2-minute call ran out; the kubelet tries again (the real node).
		"create timed out": {pullFailure("CreateContainerError", "context deadline exceeded"), false, ""},
		"crash loop":       {waiting("CrashLoopBackOff"), false, "CrashLoopBackOff"},
		"failed":           {func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }, false, "Failed"},
		"deleting":         {func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: time.Now()} }, false, "Terminating"},
		"exited": {func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 127, Reason: "Error"}}}}
		}, false, "Exited"},
		"unschedulable": {func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available: insufficient cpu"}}
		}, false, "Unschedulable"},
		// The scheduler tried before the PV controller bound a workspace of
		// an Immediate class; it retries once the claim binds (seen in 3 of
		// 20 `create --persist` of bench/rows_persist.go).
		"workspace not bound yet": {func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. not found"}}
		}, false, ""},
		// The claim bound a moment ago; the scheduler's cache has not seen
		// the volume yet (a loaded CI run's simulated provisioner).
		"workspace bound, volume not seen yet": {func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: `0/1 nodes are available: persistentvolume "pvc-ea689ebc-78f2-48c9-a589-0c8cb3399232" not found. not found`}}
		}, false, ""},
		"workspace claim not seen yet": {func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: `0/1 nodes are available: persistentvolumeclaim "ws-demo" not found.`}}
		}, false, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ok, err := Started(podWith(tc.mutate), "demo")
			if ok != tc.started {
				t.Errorf("started = %v", ok)
			}
			var se *StartError
			if tc.failReason == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.failReason != "" && (!errors.As(err, &se) || se.Reason != tc.failReason) {
				t.Fatalf("err = %v, want reason %s", err, tc.failReason)
			}
		})
	}
}

func TestWaitForRunningFailsFastWithReason(t *testing.T) {
	p := podWith(pullFailure("ImagePullBackOff", "manifest unknown"))
	cs := fakeCluster(p)
	start := time.Now()
	_, err := WaitForRunning(context.Background(), cs, p, time.Minute, nil)
	var se *StartError
	if !errors.As(err, &se) || se.Reason != "ImagePullBackOff" || !strings.Contains(err.Error(), "(check the image name") ||
		!strings.Contains(se.Words(func(f string) string { return "--" + f }), "(check the --image name") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("did not fail fast")
	}
}

func TestWaitForRunningTimeoutNamesState(t *testing.T) {
	p := podWith(waiting("ContainerCreating"))
	cs := fakeCluster(p)
	_, err := WaitForRunning(context.Background(), cs, p, 300*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "ContainerCreating") || field.StepOf(err) != (field.Step{Hint: field.HintWaitSandbox, Name: p.Name, Namespace: "ns"}) {
		t.Fatalf("err = %v", err)
	}
}

func TestStatus(t *testing.T) {
	cases := map[string]func(*corev1.Pod){
		"Pending":          func(p *corev1.Pod) {},
		"Running":          func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning },
		"ImagePullBackOff": waiting("ImagePullBackOff"),
		"Terminating":      func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} },
		"Unschedulable": func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}}
		},
		"ExitCode:3": func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3}}}}
		},
	}
	for want, mutate := range cases {
		if got := Status(podWith(mutate)); got != want {
			t.Errorf("Status = %q, want %q", got, want)
		}
	}
}

func TestStartErrorMessages(t *testing.T) {
	for reason := range startHints {
		msg := (&StartError{Name: "d", Namespace: "n", Reason: reason}).Error()
		if !strings.Contains(msg, reason) || !strings.Contains(msg, "(") {
			t.Errorf("%s: %s", reason, msg)
		}
	}
}

// A registry's 429 does not kill a create that would succeed: the wait
// goes on, the progress callback hears why, and Running ends it.
func TestWaitForRunningWaitsOutTransientPullErrors(t *testing.T) {
	p := podWith(pullFailure("ErrImagePull", "429 Too Many Requests"))
	p.UID = "u1"
	cs := fakeCluster(p)
	var mu sync.Mutex
	var heard []string
	done := make(chan error, 1)
	watching := fakecluster.Watching(cs, "pods")
	go func() {
		_, err := WaitForRunning(context.Background(), cs, p, time.Minute, func(s string) {
			mu.Lock()
			heard = append(heard, s)
			mu.Unlock()
		})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(heard)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	<-watching
	running := p.DeepCopy()
	running.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := cs.CoreV1().Pods("ns").UpdateStatus(context.Background(), running, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a transient pull error ended the wait: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) == 0 || heard[0] != "ErrImagePull: 429 Too Many Requests" {
		t.Fatalf("progress heard %q", heard)
	}
}

func TestPermanentPullFailure(t *testing.T) {
	for msg, want := range map[string]bool{
		`failed to resolve reference "docker.io/library/nope:1": docker.io/library/nope:1: not found`: true,
		"pull access denied, repository does not exist or may require authorization":                  true,
		"failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized":   true,
		`couldn't parse image name "UPPER": invalid reference format`:                                 true,
		"dial tcp: lookup registry.example.invalid: no such host":                                     true,
		"429 Too Many Requests": false,
		"toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating": false,
		"read tcp 10.0.0.1:1234->1.2.3.4:443: read: connection reset by peer":                                  false,
		"received unexpected HTTP status: 503 Service Unavailable":                                             false,
		"net/http: TLS handshake timeout":                                                                      false,
		"":                                                                                                     false,
	} {
		if got := PermanentPullFailure(msg); got != want {
			t.Errorf("PermanentPullFailure(%q) = %v, want %v", msg, got, want)
		}
	}
}
