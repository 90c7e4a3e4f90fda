package e2b

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newClockedServer(t *testing.T) (*testServer, *fakeClock) {
	clock := &fakeClock{now: time.Now()}
	return newTestServer(t, func(o *Options) { o.Now = clock.Now }), clock
}

// end is sandbox id's E2B end, which it must have.
func (ts *testServer) end(t *testing.T, id string) time.Time {
	t.Helper()
	end, ok := endOf(ts.pod(t, id))
	if !ok {
		t.Fatalf("sandbox %s has no end (%s)", id, AnnotationEnd)
	}
	return end
}

// wantEnd fails unless sandbox id ends within 2s of want, which getInfo
// and list report too, its Pod's deadline still the ceiling (an hour).
func (ts *testServer) wantEnd(t *testing.T, what, id string, want time.Time) {
	t.Helper()
	if got := ts.end(t, id); got.Sub(want).Abs() > 2*time.Second {
		t.Errorf("%s: end %s, want %s", what, got.Format(time.RFC3339), want.UTC().Format(time.RFC3339))
	}
	var d api.SandboxDetail
	ts.call(t, "GET", "/sandboxes/"+id, nil, &d)
	if d.EndAt.Sub(want).Abs() > 2*time.Second {
		t.Errorf("%s: getInfo's endAt %s, want %s", what, d.EndAt, want.UTC())
	}
	var list []api.ListedSandbox
	ts.call(t, "GET", "/v2/sandboxes", nil, &list)
	for _, l := range list {
		if l.SandboxID == id && l.EndAt.Sub(want).Abs() > 2*time.Second {
			t.Errorf("%s: list's endAt %s, want %s", what, l.EndAt, want.UTC())
		}
	}
	if dl := ts.pod(t, id).Spec.ActiveDeadlineSeconds; dl == nil || *dl != 3600 {
		t.Errorf("%s: activeDeadlineSeconds %v, want the ceiling 3600 untouched", what, dl)
	}
}

func setTimeout(t *testing.T, ts *testServer, id string, seconds int32) {
	t.Helper()
	if resp := ts.call(t, "POST", "/sandboxes/"+id+"/timeout", api.SandboxTimeoutRequest{Timeout: seconds}, nil); resp.StatusCode != 204 {
		t.Fatalf("timeout %d: status %d, want 204", seconds, resp.StatusCode)
	}
}

func TestTimeoutExtendsAndShortensWithinTheCeiling(t *testing.T) {
	ts, clock := newClockedServer(t)
	id := ts.create(t, api.NewSandbox{TemplateID: "base", Timeout: ptr(int32(600))}).SandboxID
	ts.wantEnd(t, "create 600", id, clock.Now().Add(600*time.Second))

	setTimeout(t, ts, id, 60)
	ts.wantEnd(t, "shortened to 60", id, clock.Now().Add(60*time.Second))
	clock.Add(30 * time.Second)
	setTimeout(t, ts, id, 3000)
	ts.wantEnd(t, "extended to 3000", id, clock.Now().Add(3000*time.Second))

	// Past the ceiling a timeout is capped at it, as E2B caps a sandbox's
	// life: the keep-alive late in a sandbox's life is no error.
	ceiling := ts.pod(t, id).Status.StartTime.Add(time.Hour)
	clock.Add(50 * time.Minute)
	setTimeout(t, ts, id, 1200)
	ts.wantEnd(t, "1200 ten minutes before the ceiling", id, ceiling)

	ts.wantError(t, "POST", "/sandboxes/"+id+"/timeout", api.SandboxTimeoutRequest{Timeout: 3601}, 400, "at most 3600 seconds", "--ttl")
	ts.wantError(t, "POST", "/sandboxes/"+id+"/timeout", api.SandboxTimeoutRequest{Timeout: 0}, 400, "positive")
	ts.wantError(t, "POST", "/sandboxes/nope-123/timeout", api.SandboxTimeoutRequest{Timeout: 60}, 404, "not found")
	ts.wantError(t, "POST", "/sandboxes/"+id+"/timeout", `{"timeout": "soon"}`, 400)
	ts.wantEnd(t, "after refusals", id, ceiling)
}

func TestConnectExtendsNeverShortens(t *testing.T) {
	ts, clock := newClockedServer(t)
	id := ts.create(t, api.NewSandbox{TemplateID: "base", Timeout: ptr(int32(60))}).SandboxID
	connect := func(seconds int32) {
		t.Helper()
		if resp := ts.call(t, "POST", "/sandboxes/"+id+"/connect", api.ConnectSandbox{Timeout: seconds}, nil); resp.StatusCode != 200 {
			t.Fatalf("connect %d: status %d, want 200", seconds, resp.StatusCode)
		}
	}
	clock.Add(20 * time.Second)
	connect(300)
	ts.wantEnd(t, "connect 300", id, clock.Now().Add(300*time.Second))
	connect(30)
	ts.wantEnd(t, "connect 30 after 300", id, clock.Now().Add(300*time.Second))
	// The SDK's default on a serve of shorter --ttl, or any more: capped.
	connect(7200)
	ts.wantEnd(t, "connect 7200", id, ts.pod(t, id).Status.StartTime.Add(time.Hour))
}

func TestEndExpiredKillsOnlyServesExpiredSandboxes(t *testing.T) {
	ts, clock := newClockedServer(t)
	ctx := context.Background()
	expiring := ts.create(t, api.NewSandbox{TemplateID: "base", Timeout: ptr(int32(60))}).SandboxID
	expiringPod := ts.pod(t, expiring).Name
	living := ts.create(t, api.NewSandbox{TemplateID: "base", Timeout: ptr(int32(600))}).SandboxID
	notServes := ts.create(t, api.NewSandbox{TemplateID: "base", Timeout: ptr(int32(60))}).SandboxID
	unlabel, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{LabelServe: nil}}})
	if _, err := ts.cs.CoreV1().Pods(testNamespace).Patch(ctx, ts.pod(t, notServes).Name, types.MergePatchType, unlabel, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// serve's label and an expired end, in another namespace.
	other := ts.pod(t, expiring).DeepCopy()
	other.Namespace, other.UID, other.ResourceVersion = "elsewhere", "", ""
	if _, err := ts.cs.CoreV1().Pods("elsewhere").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := ts.srv.EndExpired(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{expiring, living, notServes} {
		ts.pod(t, id) // none has expired yet
	}
	clock.Add(61 * time.Second)
	if err := ts.srv.EndExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.cs.CoreV1().Pods(testNamespace).Get(ctx, expiringPod, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("sandbox past its end: Get says %v, want it deleted", err)
	}
	ts.wantError(t, "GET", "/sandboxes/"+expiring, nil, 404, "not found")
	ts.pod(t, living)
	ts.pod(t, notServes)
	if _, err := ts.cs.CoreV1().Pods("elsewhere").Get(ctx, other.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("another namespace's Pod: %v, want it left alone", err)
	}
}

func TestEnforceTimeoutsRunsUntilCancelled(t *testing.T) {
	ts, clock := newClockedServer(t)
	id := ts.create(t, api.NewSandbox{TemplateID: "base", Timeout: ptr(int32(60))}).SandboxID
	name := ts.pod(t, id).Name
	clock.Add(2 * time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ts.srv.EnforceTimeouts(ctx, 10*time.Millisecond); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := ts.cs.CoreV1().Pods(testNamespace).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox past its end still there after 10s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("EnforceTimeouts did not return when its context was cancelled")
	}
}
