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

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// Delete finds the sandbox called name and deletes its Pod (see
// DeletePod) and, for a persistent sandbox, its workspace (see
// DeleteWorkspace): a suspended sandbox has no Pod, and is deleted all the
// same. pod is nil when there was none.
func Delete(ctx context.Context, cs kubernetes.Interface, namespace, name string, gracePeriod *int64) (*corev1.Pod, error) {
	pod, err := Find(ctx, cs, namespace, name)
	var notFound *NotFoundError
	switch {
	case errors.As(err, &notFound):
		switch gone, werr := DeleteWorkspace(ctx, cs, namespace, name); {
		case werr != nil:
			return nil, werr
		case !gone:
			return nil, err
		}
		return nil, nil
	case err != nil:
		return nil, err
	}
	if err := DeletePod(ctx, cs, pod, gracePeriod); err != nil {
		return pod, err
	}
	if IsPersistent(pod) {
		if _, err := DeleteWorkspace(ctx, cs, namespace, name); err != nil {
			return pod, err
		}
	}
	return pod, nil
}

// IsPersistent reports whether a sandbox Pod mounts a workspace (one
// claimed from a pool keeps its member's name: workspace_pool.go).
func IsPersistent(pod *corev1.Pod) bool { return MountedWorkspace(pod) != "" }

// DeleteWorkspace deletes the workspace of the sandbox called name, by
// UID, and with it (through the garbage collector) the sandbox's Secret
// and any Pod it still owns. The cluster keeps the claim until no running
// Pod uses it. gone is false when there was no workspace of ours to
// delete; a workspace the user may not read counts as none.
func DeleteWorkspace(ctx context.Context, cs kubernetes.Interface, namespace, name string) (gone bool, err error) {
	pvc, err := workspaceOf(ctx, cs, namespace, name)
	switch {
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
		return false, nil
	case err != nil:
		return false, err
	case OursWorkspace(pvc, name) != nil:
		return false, nil
	case pvc.DeletionTimestamp != nil:
		return true, nil
	}
	err = cs.CoreV1().PersistentVolumeClaims(namespace).Delete(ctx, pvc.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: ptr.To(pvc.UID)},
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("deleting the workspace of sandbox %q (persistentvolumeclaim/%s): %w", name, pvc.Name, err)
	}
	return true, nil
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
	if grant := pod.Annotations[keys.GrantAnnotation]; err == nil && grant != "" {
		// The proxy stops using the entry once the Pod is gone; removing
		// it is tidiness, and what is left here gc prunes.
		_ = RemoveKeyEntryOf(ctx, cs, pod.Namespace, pod.Name, grant)
	}
	return err
}

// Delete removes what Create made: the sandbox's Pod, by UID, with its
// normal grace period (PID 1 ends at once on SIGTERM), its workspace and
// the namespace if Create made them; the garbage collector takes the Secret and NetworkPolicy.
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
	if w := c.Workspace; w != nil && c.madeWorkspace && len(errs) == 0 {
		// A workspace this Create made is part of what it made; one a
		// Resume found is the sandbox's, and stays.
		err := cs.CoreV1().PersistentVolumeClaims(w.Namespace).Delete(cctx, w.Name, metav1.DeleteOptions{
			Preconditions:     &metav1.Preconditions{UID: ptr.To(w.UID)},
			PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
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
