package pool

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// Undoing a claim that could not finish: nothing of it goes back to the
// pool.

// deleteClaimed removes a member this claim took but could not finish.
// Nothing of it may go back to the pool: secrets may already be inside.
func deleteClaimed(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) error {
	cctx, cancel := sandbox.CleanupContext(ctx)
	defer cancel()
	err := cs.CoreV1().Pods(pod.Namespace).Delete(cctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: ptr.To(pod.UID)},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cleaning up failed; left behind in namespace %q: pod/%s (remove with: kubectl delete pod -n %s %s): %v",
			pod.Namespace, pod.Name, pod.Namespace, pod.Name, err)
	}
	return nil
}

// undoClaim deletes member if this claim's write (id) landed on it.
func undoClaim(ctx context.Context, cs kubernetes.Interface, member *corev1.Pod, id string) error {
	cctx, cancel := sandbox.CleanupContext(ctx)
	defer cancel()
	got, err := cs.CoreV1().Pods(member.Namespace).Get(cctx, member.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return field.WithStep(fmt.Errorf("cannot tell whether pool member %s was claimed before the interrupt: %v", member.Name, err),
			field.Step{Hint: field.HintCheckMember, Name: member.Name, Namespace: member.Namespace})
	}
	if got.UID != member.UID || got.Annotations[AnnotationClaim] != id {
		return nil
	}
	if err := deleteClaimed(ctx, cs, got); err != nil {
		return err
	}
	// It was claimed: someone must make its replacement.
	_ = refill(ctx, cs, member)
	return nil
}
