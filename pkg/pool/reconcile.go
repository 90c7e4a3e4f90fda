package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// A pool's members: counted by state, and topped up to its size.

// PoolStatus is what a pool has, counted from its Pods.
type PoolStatus struct {
	Pool *Pool
	// Ready members can be claimed now; Starting ones are on their way
	// (or stuck: see Problems).
	Ready, Starting int
	// Claimed counts the live sandboxes claimed from the pool.
	Claimed int
	// Problems are the states of members that are waiting on something,
	// with the cluster's message ("2 × ErrImagePull: ..."), most common first.
	Problems []string
	// Created and Removed count what Reconcile did.
	Created, Removed int
}

// Members is Ready + Starting.
func (s *PoolStatus) Members() int { return s.Ready + s.Starting }

// memberState sorts a pool's Pods.
type memberState int

const (
	stateOther    memberState = iota // not a member of this generation of the pool
	stateReady                       // claimable
	stateStarting                    // on its way, or stuck
	stateDead                        // finished, failed, or of an older generation: to delete
	stateGoing                       // being deleted
	stateClaimed                     // a live sandbox claimed from the pool
)

func classify(pod *corev1.Pod, p *Pool) memberState {
	if pod.Labels[sandbox.LabelPool] != p.Name {
		return stateOther
	}
	if pod.Labels[sandbox.LabelSandbox] != "" {
		if pod.DeletionTimestamp == nil && sandbox.Ours(pod, sandbox.NameOf(pod)) == nil {
			return stateClaimed
		}
		return stateOther
	}
	if isMember(pod, p.Name) != nil {
		return stateOther
	}
	switch {
	case pod.DeletionTimestamp != nil:
		return stateGoing
	case !ownedByPool(pod, p.UID):
		// Left by a pool of this name that was deleted: the garbage
		// collector removes it too; it must not be claimed meanwhile.
		return stateDead
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return stateDead
	}
	if started, err := sandbox.Started(pod, ""); started && err == nil {
		return stateReady
	}
	return stateStarting
}

// Reconcile brings the pool to its size: it deletes members that finished,
// that belong to an earlier pool of this name, or that are more than the
// size (those not ready yet first), and creates the missing ones without
// waiting for them. Deletes carry the member's UID and resourceVersion as
// preconditions, so a member claimed in the meantime is never hit. Run
// concurrently (several clients at once) it may overshoot or undershoot for
// a moment; the next reconcile corrects it.
func Reconcile(ctx context.Context, cs kubernetes.Interface, p *Pool) (*PoolStatus, error) {
	list, err := cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(p.Name, false)})
	if err != nil {
		return nil, err
	}
	st := &PoolStatus{Pool: p}
	var ready, starting, remove []*corev1.Pod
	for i := range list.Items {
		pod := &list.Items[i]
		switch classify(pod, p) {
		case stateReady:
			ready = append(ready, pod)
		case stateStarting:
			starting = append(starting, pod)
		case stateDead:
			remove = append(remove, pod)
		case stateClaimed:
			st.Claimed++
		}
	}
	// Extras go least warm first: starting before ready, youngest first.
	youngestFirst := func(a, b *corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) }
	slices.SortFunc(starting, youngestFirst)
	slices.SortFunc(ready, youngestFirst)
	for len(ready)+len(starting) > p.Size {
		if len(starting) > 0 {
			remove, starting = append(remove, starting[0]), starting[1:]
		} else {
			remove, ready = append(remove, ready[0]), ready[1:]
		}
	}
	st.Ready, st.Starting = len(ready), len(starting)
	st.Problems = problems(starting, remove)

	var errs []error
	for _, pod := range remove {
		switch err := deleteMember(ctx, cs, pod); {
		case err == nil:
			st.Removed++
		case !apierrors.IsNotFound(err) && !apierrors.IsConflict(err):
			errs = append(errs, fmt.Errorf("removing pool member %s: %w", pod.Name, err))
		}
	}
	missing := p.Size - st.Members()
	if missing > 0 {
		made, err := createMembers(ctx, cs, p, missing)
		st.Created, st.Starting = made, st.Starting+made
		if err != nil {
			errs = append(errs, err)
		}
	}
	return st, errors.Join(errs...)
}

// deleteMember deletes a warm member only if it is still the Pod that was
// read: the resourceVersion precondition fails once a claim has written it.
func deleteMember(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) error {
	return sandbox.DeleteUnchanged(ctx, cs, pod)
}

// createMembers makes n members, a few at a time.
func createMembers(ctx context.Context, cs kubernetes.Interface, p *Pool, n int) (int, error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	made := 0
	limit := make(chan struct{}, 8)
	for range n {
		wg.Go(func() {
			limit <- struct{}{}
			defer func() { <-limit }()
			_, err := createMember(ctx, cs, p.memberSpec())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			made++
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		// One reason is enough: n creates of one spec fail alike.
		return made, fmt.Errorf("creating %d of %d members of pool %q: %w", len(errs), n, p.Name, errs[0])
	}
	return made, nil
}

// problems sums up why members are not ready, with the cluster's words,
// and why ended ones ended, when their agent's install failed (a member
// that ended is replaced, and its replacement installs again: the reason
// must be seen before it is gone).
func problems(starting, ended []*corev1.Pod) []string {
	count := map[string]int{}
	for _, pod := range starting {
		d := sandbox.Describe(pod)
		if !strings.Contains(d, ": ") || strings.HasPrefix(d, "SchedulingGated") {
			continue // plain Pending/ContainerCreating: just on its way
		}
		count[d]++
	}
	for _, pod := range ended {
		if msg := sandbox.InstallFailure(pod); msg != "" {
			count[sandbox.ReasonInstallFailed+": "+untrusted.Line(strings.TrimPrefix(msg, sandbox.InstallFailedPrefix), 300)]++
		}
	}
	out := make([]string, 0, len(count))
	for d := range count {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if count[out[i]] != count[out[j]] {
			return count[out[i]] > count[out[j]]
		}
		return out[i] < out[j]
	})
	for i, d := range out {
		if n := count[d]; n > 1 {
			out[i] = fmt.Sprintf("%d × %s", n, d)
		}
	}
	return out
}

// PoolStatuses counts the Pods of each pool, with one LIST per namespace.
func PoolStatuses(ctx context.Context, cs kubernetes.Interface, pools []*Pool) ([]*PoolStatus, error) {
	byNS := map[string][]corev1.Pod{}
	var out []*PoolStatus
	for _, p := range pools {
		pods, ok := byNS[p.Namespace]
		if !ok {
			list, err := cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sandbox.ManagedSelector + "," + sandbox.LabelPool})
			if err != nil {
				return nil, err
			}
			pods = list.Items
			byNS[p.Namespace] = pods
		}
		st := &PoolStatus{Pool: p}
		var starting, ended []*corev1.Pod
		for i := range pods {
			switch classify(&pods[i], p) {
			case stateReady:
				st.Ready++
			case stateStarting:
				starting = append(starting, &pods[i])
			case stateDead:
				ended = append(ended, &pods[i])
			case stateClaimed:
				st.Claimed++
			}
		}
		st.Starting, st.Problems = len(starting), problems(starting, ended)
		out = append(out, st)
	}
	return out, nil
}
