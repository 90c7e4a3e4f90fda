package sandbox

import (
	"fmt"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"
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
	return fmt.Sprintf("sandbox %q in namespace %q was claimed from pool %q at %s but the claim never finished, so it lacks the environment and secrets it was claimed with",
		e.Name, e.Namespace, e.Pool, e.Since.UTC().Format(time.RFC3339))
}

// NextStep of a stale claim: remove the sandbox or claim its name again.
func (e *HalfClaimedError) NextStep() field.Step {
	if !e.Stale {
		return field.Step{}
	}
	return field.Step{Hint: field.HintReclaim, Name: e.Name, Namespace: e.Namespace, Pool: e.Pool}
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

// StaleClaim reports whether pod's claim died (pending past ClaimGrace).
func StaleClaim(pod *corev1.Pod, now time.Time) bool {
	e, ok := ClaimUnfinished(pod, now).(*HalfClaimedError)
	return ok && e.Stale
}
