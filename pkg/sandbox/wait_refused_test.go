package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
)

// A user who may not watch (or list) Pods gets that said, instead of a wait
// that retries quietly until its timeout (which would end it with a timeout
// error, failing this test).
func TestWaitsEndOnAPermissionError(t *testing.T) {
	forbidden := func(verb string) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", nil)
	}
	for _, verb := range []string{"watch", "list"} {
		t.Run(verb, func(t *testing.T) {
			s := NewSpec("demo", "ns")
			pod := s.Pod()
			pod.UID = "u1"
			cs := fakeCluster(pod)
			if verb == "watch" {
				cs.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, forbidden(verb) })
			} else {
				cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, forbidden(verb) })
			}
			_, err := WaitForRunning(context.Background(), cs, pod, time.Minute, nil)
			if !apierrors.IsForbidden(err) {
				t.Fatalf("WaitForRunning: %v, want the permission error", err)
			}
			err = WaitForDeleted(context.Background(), cs, &corev1.Pod{ObjectMeta: pod.ObjectMeta}, time.Minute)
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "forbidden") {
				t.Fatalf("WaitForDeleted: %v, want the permission error", err)
			}
		})
	}
}
