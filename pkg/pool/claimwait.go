package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// A claim that finds no ready member: waiting for one, or creating the
// sandbox cold.

// createCold creates the claim's sandbox cold, from the pool's definition.
func createCold(ctx context.Context, cs kubernetes.Interface, s *sandbox.Spec, why string, o AcquireOptions) (*Acquired, error) {
	created, err := sandbox.Create(ctx, cs, s, o.CreateOptions)
	if err != nil {
		if ctx.Err() != nil || o.ServerDryRun {
			return nil, err
		}
		return nil, &ColdError{Why: why, Err: err}
	}
	return &Acquired{Pod: created.Pod, Why: why, Spec: *s, Secret: created.Secret}, nil
}

// ColdError: a claim found no ready member, and the cold create it fell
// back to failed. Both halves are said: the pool's trouble (say, members
// stuck on ErrImagePull) is usually the cold create's too.
type ColdError struct {
	Why string
	Err error
}

func (e *ColdError) Error() string {
	return fmt.Sprintf("%s, and creating the sandbox cold failed: %v", e.Why, e.Err)
}

func (e *ColdError) Unwrap() error { return e.Err }

// noMemberReason says why a claim found no ready member.
func noMemberReason(p *Pool, members []corev1.Pod) string {
	if p.Size == 0 {
		return fmt.Sprintf("pool %q has size 0", p.Name)
	}
	var starting, failed []*corev1.Pod
	for i := range members {
		switch m := &members[i]; {
		case !ownedByPool(m, p.UID):
		case sandbox.InstallFailure(m) != "":
			failed = append(failed, m)
		default:
			starting = append(starting, m)
		}
	}
	why := fmt.Sprintf("pool %q has no ready member", p.Name)
	switch {
	case len(starting)+len(failed) == 0:
		why += " (all claimed)"
	default:
		why += fmt.Sprintf(" (%d starting", len(starting))
		if ps := problems(starting, failed); len(ps) > 0 {
			why += ": " + strings.Join(ps, "; ")
		}
		why += ")"
	}
	return why
}

// waitAndClaim waits for a member to become ready and claims it, until
// o.Timeout. It tops the pool up first: with no controller, a pool that
// lost a member (a claimant that died before refilling) would never get
// one back while everybody waits.
func waitAndClaim(ctx context.Context, cs kubernetes.Interface, p *Pool, claim *sandbox.Spec, o AcquireOptions) (*Acquired, error) {
	if p.Size == 0 {
		return nil, field.WithStep(fmt.Errorf("pool %q in namespace %q has size 0: nothing to wait for", p.Name, p.Namespace),
			field.Step{Hint: field.HintScalePool, Name: p.Name, Namespace: p.Namespace})
	}
	if _, err := Reconcile(ctx, cs, p); err != nil && ctx.Err() == nil {
		return nil, err
	}
	var got *Acquired
	lastProblems := ""
	err := watchPool(ctx, cs, p, o.Timeout, func(pods map[types.UID]*corev1.Pod) (bool, error) {
		var ready, starting []*corev1.Pod
		for _, pod := range pods {
			switch classify(pod, p) {
			case stateReady:
				ready = append(ready, pod)
			case stateStarting:
				if _, err := sandbox.Started(pod, ""); err != nil {
					return false, memberStartError(p, pod, err)
				}
				starting = append(starting, pod)
			case stateDead:
				if _, err := sandbox.Started(pod, ""); err != nil && sandbox.InstallFailure(pod) != "" {
					return false, memberStartError(p, pod, err)
				}
			}
		}
		for _, m := range ready {
			a, err := claimMember(ctx, cs, p, m, claim, o)
			if errors.Is(err, errLost) || isUntrusted(err) {
				continue
			}
			got = a
			return true, err
		}
		if text := strings.Join(problems(starting, nil), "; "); o.Progress != nil && text != "" && text != lastProblems {
			o.Progress(text)
			lastProblems = text
		}
		return false, nil
	})
	switch {
	case err == nil:
		return got, nil
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case sandbox.IsTimeout(err):
		return nil, field.WithStep(fmt.Errorf("no member of pool %q in namespace %q became ready within %s", p.Name, p.Namespace, o.Timeout),
			field.Step{Hint: field.HintWaitClaim, Name: p.Name, Namespace: p.Namespace})
	}
	return nil, err
}
