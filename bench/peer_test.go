package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
)

func claimWithReady(name, status string) *unstructured.Unstructured {
	c := peerClaim(name, "p", 0)
	c.SetNamespace("ns")
	if status != "" {
		_ = unstructured.SetNestedSlice(c.Object, []any{
			map[string]any{"type": "Progressing", "status": "True"},
			map[string]any{"type": "Ready", "status": status},
		}, "status", "conditions")
	}
	return c
}

func TestIsReadyReadsTheReadyCondition(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   bool
	}{{"True", true}, {"False", false}, {"Unknown", false}, {"", false}} {
		if got := isReady(claimWithReady("c", tc.status)); got != tc.want {
			t.Errorf("Ready %q: isReady = %v, want %v", tc.status, got, tc.want)
		}
	}
}

// waitPeerReady counts what the list found Ready, then what the watch sees
// become Ready, and says how many of how many when it gives up.
func TestWaitPeerReady(t *testing.T) {
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{peerClaims: "SandboxClaimList"}, claimWithReady("a", "True"), claimWithReady("b", "False"))
	ri := dyn.Resource(peerClaims).Namespace("ns")
	ctx := context.Background()

	n, err := waitPeerReady(ctx, ri, metav1.ListOptions{}, 1, time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("one Ready of one wanted: %d, %v", n, err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = ri.Update(ctx, claimWithReady("b", "True"), metav1.UpdateOptions{})
	}()
	if n, err := waitPeerReady(ctx, ri, metav1.ListOptions{}, 2, time.Minute); err != nil || n != 2 {
		t.Fatalf("b becoming Ready: %d, %v", n, err)
	}
	n, err = waitPeerReady(ctx, ri, metav1.ListOptions{}, 3, 300*time.Millisecond)
	if err == nil || n != 2 || !strings.Contains(err.Error(), "2 of 3 Ready") {
		t.Fatalf("a third that never comes: %d, %v; want 2 and an error saying 2 of 3", n, err)
	}
}

// A peer that cannot run skips its rows with the reason, and does not try
// again for each row.
func TestNeedPeerSkipsWithTheReason(t *testing.T) {
	saved := thePeer
	defer func() { thePeer = saved }()
	thePeer = peerRun{tried: true, skip: errors.New("cannot build it: go build: no network")}
	e := &Env{Clientset: fake.NewClientset()}
	err := needPeer(context.Background(), e)
	if !errors.Is(err, errSkipRow) || !strings.Contains(err.Error(), "cannot build it: go build: no network") {
		t.Fatalf("needPeer with a peer that could not be built: %v; want errSkipRow with the reason", err)
	}
	if _, err := measure(context.Background(), e, &Scenario{Name: "row", Setup: needPeer}, 1, 0, nil); !errors.Is(err, errSkipRow) {
		t.Fatalf("measure of a skipped row: %v; want errSkipRow, which measureAll reports and passes over", err)
	}
}
