package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// A wait the caller stops (Ctrl-C, a server shutting down) says so and
// why, not that the sandbox outlived a timeout that never ran out.
func TestWaitForDeletedInterrupted(t *testing.T) {
	pods := manyPods(2)
	cs := fakeCluster(objects(pods)...)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("interrupted by SIGINT"))

	err := WaitForDeleted(ctx, cs, &pods[0], time.Minute)
	if err == nil || !strings.Contains(err.Error(), "stopped waiting") || !strings.Contains(err.Error(), "interrupted by SIGINT") || strings.Contains(err.Error(), "within 1m0s") {
		t.Errorf("WaitForDeleted interrupted: %v", err)
	}
	errs := WaitForAllDeleted(ctx, cs, []*corev1.Pod{&pods[0], &pods[1]}, time.Minute)
	if len(errs) != 2 || !strings.Contains(errs[1].Error(), `stopped waiting for sandbox "s1"`) {
		t.Errorf("WaitForAllDeleted interrupted: %v", errs)
	}

	// The timeout itself still reads as one.
	err = WaitForDeleted(context.Background(), cs, &pods[0], 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "was not gone within 100ms") {
		t.Errorf("WaitForDeleted timed out: %v", err)
	}
}
