package e2b

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
)

// A cold start on a slow node (a real kubelet under emulation took a
// minute) or a pool member that waited for hours is handed over long after
// its Pod started: its timeout counts from the handover, and so does the
// startedAt the client sees, so that endAt - startedAt is the timeout.
func TestStartedAtIsTheHandover(t *testing.T) {
	ts := newTestServer(t, nil)
	out := ts.create(t, api.NewSandbox{TemplateID: "base", Timeout: ptr(int32(120))})
	pod := ts.pod(t, out.SandboxID)
	long := metav1.NewTime(time.Now().Add(-time.Hour))
	pod.Status.StartTime = &long
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: long}}
	if _, err := ts.cs.CoreV1().Pods(testNamespace).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var d api.SandboxDetail
	ts.call(t, "GET", "/sandboxes/"+out.SandboxID, nil, &d)
	if life := d.EndAt.Sub(d.StartedAt); life < 119*time.Second || life > 121*time.Second {
		t.Errorf("a Pod started an hour before its handover: endAt - startedAt = %s, want the timeout 120s", life)
	}
}

func TestStartedAtOfSandboxesServeDidNotMake(t *testing.T) {
	created := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	start, ready := created.Add(time.Second), created.Add(time.Minute)
	at := func(t time.Time) *metav1.Time { m := metav1.NewTime(t); return &m }
	for _, c := range []struct {
		name string
		pod  corev1.Pod
		want time.Time
	}{
		{"created only", corev1.Pod{}, created},
		{"started", corev1.Pod{Status: corev1.PodStatus{StartTime: at(start)}}, start},
		{"ready", corev1.Pod{Status: corev1.PodStatus{StartTime: at(start), Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: *at(created)},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: *at(ready)},
		}}}, ready},
		{"not ready", corev1.Pod{Status: corev1.PodStatus{StartTime: at(start), Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: *at(ready)},
		}}}, start},
		{"annotation that does not parse", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationStarted: "yesterday"}},
			Status: corev1.PodStatus{StartTime: at(start)}}, start},
	} {
		c.pod.CreationTimestamp = metav1.NewTime(created)
		if got := startedAt(&c.pod); !got.Equal(c.want) {
			t.Errorf("%s: startedAt = %s, want %s", c.name, got, c.want)
		}
	}
}
