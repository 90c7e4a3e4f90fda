package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Waiting for a pool's members to be ready, and saying why one cannot
// start.

// WaitForPool watches the pool's members until Size of them are ready. It
// returns at once, with the cluster's reason, when a member cannot start.
func WaitForPool(ctx context.Context, cs kubernetes.Interface, p *Pool, timeout time.Duration, progress func(string)) (*PoolStatus, error) {
	var last *PoolStatus
	lastProblems := ""
	err := watchPool(ctx, cs, p, timeout, func(pods map[types.UID]*corev1.Pod) (bool, error) {
		st := &PoolStatus{Pool: p}
		var starting []*corev1.Pod
		for _, pod := range pods {
			switch classify(pod, p) {
			case stateReady:
				st.Ready++
			case stateStarting:
				if _, err := sandbox.Started(pod, ""); err != nil {
					return false, memberStartError(p, pod, err)
				}
				starting = append(starting, pod)
			case stateDead:
				// A member whose install failed ended: its replacement
				// would fail alike, so the pool cannot start.
				if _, err := sandbox.Started(pod, ""); err != nil && sandbox.InstallFailure(pod) != "" {
					return false, memberStartError(p, pod, err)
				}
			case stateClaimed:
				st.Claimed++
			}
		}
		st.Starting, st.Problems = len(starting), problems(starting, nil)
		last = st
		if text := strings.Join(st.Problems, "; "); progress != nil && text != "" && text != lastProblems {
			progress(text)
			lastProblems = text
		}
		return st.Ready >= p.Size, nil
	})
	if err != nil && sandbox.IsTimeout(err) && ctx.Err() == nil {
		state := "no member"
		if last != nil {
			state = fmt.Sprintf("%d of %d ready", last.Ready, p.Size)
			if len(last.Problems) > 0 {
				state += ": " + strings.Join(last.Problems, "; ")
			}
		}
		return last, field.WithStep(fmt.Errorf("pool %q in namespace %q was not ready within %s (%s)", p.Name, p.Namespace, timeout, state),
			field.Step{Hint: field.HintWaitPool, Name: p.Name, Namespace: p.Namespace})
	}
	if err != nil && ctx.Err() != nil {
		return last, context.Cause(ctx)
	}
	return last, err
}

func memberStartError(p *Pool, pod *corev1.Pod, err error) error {
	var se *sandbox.StartError
	if errors.As(err, &se) {
		return &memberStartErr{pool: p, pod: pod.Name, start: se}
	}
	return err
}

// memberStartErr: a pool's member cannot start, with the cluster's reason
// and the advice on it, which names fields (a field.Worder).
type memberStartErr struct {
	pool  *Pool
	pod   string
	start *sandbox.StartError
}

func (e *memberStartErr) Error() string { return e.Words(func(f string) string { return f }) }

// Words is the error with name's name for the fields its advice names.
func (e *memberStartErr) Words(name func(field string) string) string {
	msg := fmt.Sprintf("pool %q in namespace %q cannot start its members: %s (pod %s): %s", e.pool.Name, e.pool.Namespace, e.start.Reason, e.pod, e.start.Message)
	if hint := e.start.Hint(name); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}
