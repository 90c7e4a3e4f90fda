package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// A claim that brings an environment (--env, --secret-env, an idle timeout)
// takes two steps: the one write that makes the member a sandbox, then the
// exec that delivers the environment. A claimant killed between the two
// leaves a sandbox that holds its name but never got its environment; run
// as if whole, a command in it would miss its secrets without a word. So
// the claim's write marks the sandbox pending (with the time), the delivery
// ends by marking it complete, and everything that runs a command in a
// sandbox refuses a pending one (HalfClaimedError) — from the cluster's
// state alone, whoever looks. gc removes one pending past ClaimGrace, and a
// new claim of the name from the same pool replaces it.

// Annotations of a claim's progress.
const (
	// AnnotationClaimState is ClaimPending from the claim's write until
	// the environment is delivered, then ClaimComplete. A claim with
	// nothing to deliver is whole with its write and carries neither.
	AnnotationClaimState = "agentkernel/claim-state"
	// AnnotationClaimedAt is when the claim was written (RFC 3339).
	AnnotationClaimedAt = "agentkernel/claimed-at"

	ClaimPending  = "pending"
	ClaimComplete = "complete"
)

// ClaimGrace is how long a pending claim is taken to be still on its way
// (a delivery is one exec: well under a second on a healthy cluster).
// After it, the claim is taken to have died: gc removes the sandbox, and a
// new claim of its name replaces it.
const ClaimGrace = 30 * time.Second

// HalfClaimedError: the sandbox's claim has not finished (Stale: and never
// will), so it lacks the environment and secrets it was claimed with.
type HalfClaimedError struct {
	Name, Namespace, Pool string
	Since                 time.Time
	Stale                 bool
}

func (e *HalfClaimedError) Error() string {
	if !e.Stale {
		return fmt.Sprintf("sandbox %q in namespace %q is still being claimed from pool %q (its environment is being delivered); try again in a few seconds",
			e.Name, e.Namespace, e.Pool)
	}
	return fmt.Sprintf("sandbox %q in namespace %q was claimed from pool %q at %s but the claim never finished, so it lacks the environment and secrets it was claimed with; remove it with: kubectl agentkernel delete %s -n %s, or claim the name again (which replaces it) with: kubectl agentkernel create %s -n %s --pool %s ...",
		e.Name, e.Namespace, e.Pool, e.Since.UTC().Format(time.RFC3339), e.Name, e.Namespace, e.Name, e.Namespace, e.Pool)
}

// ClaimUnfinished returns a *HalfClaimedError when pod is a sandbox whose
// claim has not finished, nil otherwise. Commands that run anything in a
// sandbox call it before they do.
func ClaimUnfinished(pod *corev1.Pod, now time.Time) error {
	if pod.Annotations[AnnotationClaimState] != ClaimPending {
		return nil
	}
	e := &HalfClaimedError{Name: NameOf(pod), Namespace: pod.Namespace, Pool: pod.Labels[LabelPool]}
	since, err := time.Parse(time.RFC3339, pod.Annotations[AnnotationClaimedAt])
	if err != nil {
		// Unreadable: count from the Pod's creation, which is earlier.
		since = pod.CreationTimestamp.Time
	}
	e.Since, e.Stale = since, now.Sub(since) > ClaimGrace
	return e
}

// staleClaim reports whether pod's claim died (pending past ClaimGrace).
func staleClaim(pod *corev1.Pod, now time.Time) bool {
	e, ok := ClaimUnfinished(pod, now).(*HalfClaimedError)
	return ok && e.Stale
}

// completeClaim marks the claim id on pod complete. The write carries the
// Pod's UID and resourceVersion; when a status update of the kubelet moved
// the resourceVersion on, it reads the Pod again and retries while the Pod
// is still the one this claim took.
func completeClaim(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, id string) (*corev1.Pod, error) {
	cur := pod
	for attempt := 0; ; attempt++ {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"uid":             cur.UID,
			"resourceVersion": cur.ResourceVersion,
			"annotations":     map[string]string{AnnotationClaimState: ClaimComplete},
		}})
		got, err := cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			return got, nil
		}
		if !apierrors.IsConflict(err) || attempt == 4 {
			return nil, fmt.Errorf("marking the claim of sandbox %q complete: %w", NameOf(pod), err)
		}
		cur, err = cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("marking the claim of sandbox %q complete: %w", NameOf(pod), err)
		}
		if cur.UID != pod.UID || cur.Annotations[AnnotationClaim] != id || cur.DeletionTimestamp != nil {
			return nil, fmt.Errorf("sandbox %q was removed or replaced while its claim was being finished", NameOf(pod))
		}
	}
}

// settleUnfinished makes way for a claim of a name whose earlier claim
// from the same pool did not finish: it waits for one still within
// ClaimGrace to finish or die, and deletes one that died (by UID and
// resourceVersion, so a claim finishing at that moment is left alone). A
// sandbox of the name that is whole, or from elsewhere, is left for the
// claim to back off from as usual.
func settleUnfinished(ctx context.Context, cs kubernetes.Interface, claim *Spec, p *Pool) error {
	sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy, LabelSandbox: claim.Name, LabelPool: p.Name}).String()
	for {
		list, err := cs.CoreV1().Pods(claim.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		waiting := false
		for i := range list.Items {
			pod := &list.Items[i]
			if Ours(pod, claim.Name) != nil || pod.DeletionTimestamp != nil || ClaimUnfinished(pod, time.Now()) == nil {
				continue
			}
			if !staleClaim(pod, time.Now()) {
				waiting = true
				continue
			}
			err := cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
				GracePeriodSeconds: ptr.To[int64](0),
				Preconditions:      &metav1.Preconditions{UID: ptr.To(pod.UID), ResourceVersion: ptr.To(pod.ResourceVersion)},
			})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("replacing sandbox %q, whose claim never finished: %w", claim.Name, err)
			}
		}
		if !waiting {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
