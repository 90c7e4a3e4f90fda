package e2e

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// rv parses a resource version. Clients must not compare them in general;
// on this test cluster they are etcd revisions, one counter for every
// object, which is exactly what an ordering check needs.
func rv(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("resource version %q: %v", s, err)
	}
	return n
}

// podEvents records every Pod and NetworkPolicy event in a namespace from
// now until the test ends.
type podEvents struct {
	mu       sync.Mutex
	pods     []*corev1.Pod                              // every version of every Pod, in order
	policies map[types.UID][]networkingv1.NetworkPolicy // by owner UID, as first seen
}

func recordPodEvents(t *testing.T, ns string) *podEvents {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &podEvents{policies: map[types.UID][]networkingv1.NetworkPolicy{}}
	pw, err := env.cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nw, err := env.cs.NetworkingV1().NetworkPolicies(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for ev := range pw.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted {
				e.mu.Lock()
				e.pods = append(e.pods, p)
				e.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev := range nw.ResultChan() {
			if np, ok := ev.Object.(*networkingv1.NetworkPolicy); ok && ev.Type == watch.Added {
				e.mu.Lock()
				for _, ref := range np.OwnerReferences {
					e.policies[ref.UID] = append(e.policies[ref.UID], *np)
				}
				e.mu.Unlock()
			}
		}
	}()
	return e
}

func gated(p *corev1.Pod) bool {
	return slices.ContainsFunc(p.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == sandbox.FenceGate })
}

// gateHistory says whether the Pod's first version carried the fence gate,
// and the revision at which the gate was lifted (0: never).
func (e *podEvents) gateHistory(t *testing.T, uid types.UID) (createdGated bool, ungatedAt uint64) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := false
	for _, p := range e.pods {
		if p.UID != uid {
			continue
		}
		if !seen {
			seen, createdGated = true, gated(p)
		}
		if !gated(p) {
			return createdGated, rv(t, p.ResourceVersion)
		}
	}
	return createdGated, 0
}

// ungatedPods lists the UIDs of every Pod seen without its gate.
func (e *podEvents) ungatedPods() map[types.UID]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[types.UID]string{}
	for _, p := range e.pods {
		if !gated(p) {
			out[p.UID] = p.Name
		}
	}
	return out
}

// policiesOwnedBy returns the NetworkPolicies seen created with owner uid.
func (e *podEvents) policiesOwnedBy(uid types.UID) []networkingv1.NetworkPolicy {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]networkingv1.NetworkPolicy(nil), e.policies[uid]...)
}
