package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// Delete finds the sandbox called name and deletes its Pod; see DeletePod.
func Delete(ctx context.Context, cs kubernetes.Interface, namespace, name string, gracePeriod *int64) (*corev1.Pod, error) {
	pod, err := Find(ctx, cs, namespace, name)
	if err != nil {
		return nil, err
	}
	return pod, DeletePod(ctx, cs, pod, gracePeriod)
}

// DeletePod deletes a sandbox Pod that passed Ours, by name and UID: a Pod
// re-created under that name since it was read is never hit. The garbage
// collector removes the Secret and NetworkPolicy the Pod owns.
func DeletePod(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, gracePeriod *int64) error {
	if why := Ours(pod, NameOf(pod)); why != nil {
		return &NotManagedError{Name: NameOf(pod), Namespace: pod.Namespace, PodName: pod.Name, Reason: why.Error()}
	}
	err := cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: gracePeriod,
		Preconditions:      &metav1.Preconditions{UID: ptr.To(pod.UID)},
		PropagationPolicy:  ptr.To(metav1.DeletePropagationBackground),
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// Gone, or replaced by a newer Pod of that name that is not ours to delete.
		return &NotFoundError{Name: NameOf(pod), Namespace: pod.Namespace}
	}
	return err
}

// Delete removes what Create made: the sandbox's Pod, by UID, with its
// normal grace period (PID 1 ends at once on SIGTERM), and the namespace if
// Create made it; the garbage collector takes the Secret and NetworkPolicy.
// Then it waits, up to timeout, until the Pod is gone: terminating reports
// a Pod that was deleted but is not gone yet (a slow kubelet), which is
// not an error. It works on the cleanup context (see WithCleanupContext),
// so it still runs after Ctrl-C; a second interrupt stops it, and an error
// names what may be left.
func (c *Created) Delete(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) (terminating bool, err error) {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	pod := c.Pod
	var errs []error
	deleted := false
	if pod != nil {
		err := DeletePod(cctx, cs, pod, nil)
		var gone *NotFoundError
		switch {
		case errors.As(err, &gone):
		case err != nil:
			errs = append(errs, err)
		default:
			deleted = true
		}
	}
	if ns := c.Namespace; ns != nil && len(errs) == 0 {
		err := cs.CoreV1().Namespaces().Delete(cctx, ns.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(ns.UID)}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		why := "deleting the sandbox failed"
		if cctx.Err() != nil {
			why = "deleting the sandbox was interrupted"
		}
		left := c.namespace()
		if pod != nil {
			leftBehind := field.WithStep(fmt.Errorf("%s; sandbox %q may be left in namespace %q", why, NameOf(pod), left),
				field.Step{Hint: field.HintRemoveLeft, Name: NameOf(pod), Namespace: left})
			return false, fmt.Errorf("%w: %w", leftBehind, errors.Join(errs...))
		}
		return false, fmt.Errorf("%s: %w", why, errors.Join(errs...))
	}
	if deleted {
		// Bounded by timeout, not by cleanupTimeout; a second Ctrl-C ends it.
		if err := WaitForDeleted(cleanupBase(ctx), cs, pod, timeout); err != nil {
			return true, nil
		}
	}
	return false, nil
}
