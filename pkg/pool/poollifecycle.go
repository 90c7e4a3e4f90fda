package pool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Pool create, scale and delete.

// PoolOptions are the choices of CreatePool and ScalePool beyond the pool.
type PoolOptions struct {
	// Wait until Size members are ready, failing fast when one cannot start.
	Wait     bool
	Timeout  time.Duration
	Progress func(state string)
}

// CreatePool stores the pool's definition and makes its members. A name
// already taken is refused. If anything fails (including the wait, or ctx
// being cancelled) the pool and the members made are removed again, on the
// cleanup context.
func CreatePool(ctx context.Context, cs kubernetes.Interface, p *Pool, o PoolOptions) (_ *PoolStatus, err error) {
	// The definition holds the UID its members run as: the namespace's
	// (OpenShift's range) unless one was chosen.
	if err := p.Spec.FromNamespace(ctx, cs); err != nil {
		return nil, err
	}
	t, err := cs.CoreV1().PodTemplates(p.Namespace).Create(ctx, p.PodTemplate(), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := cs.CoreV1().PodTemplates(p.Namespace).Get(ctx, PoolTemplateName(p.Name), metav1.GetOptions{})
		if gerr == nil && !sandbox.IsManaged(existing) {
			return nil, &NotAPoolError{Name: p.Name, Namespace: p.Namespace, TemplateName: existing.Name}
		}
		return nil, &PoolExistsError{Name: p.Name, Namespace: p.Namespace}
	}
	if err != nil {
		return nil, fmt.Errorf("creating pool %q: %w", p.Name, err)
	}
	p.UID, p.ResourceVersion, p.CreationTimestamp = t.UID, t.ResourceVersion, t.CreationTimestamp
	defer func() {
		if err != nil {
			if cerr := removePool(ctx, cs, p); cerr != nil {
				err = fmt.Errorf("%w; %v", err, cerr)
			}
		}
	}()
	st, err := Reconcile(ctx, cs, p)
	if err != nil {
		return st, err
	}
	if o.Wait {
		return WaitForPool(ctx, cs, p, o.Timeout, o.Progress)
	}
	return st, nil
}

// removePool undoes a CreatePool: the PodTemplate and its members, by UID.
func removePool(ctx context.Context, cs kubernetes.Interface, p *Pool) error {
	cctx, cancel := sandbox.CleanupContext(ctx)
	defer cancel()
	err := cs.CoreV1().PodTemplates(p.Namespace).Delete(cctx, PoolTemplateName(p.Name), metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: ptr.To(p.UID)},
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
	})
	if err != nil && !apierrors.IsNotFound(err) {
		left := field.WithStep(fmt.Errorf("cleaning up failed; left behind in namespace %q: podtemplate/%s and its pods", p.Namespace, PoolTemplateName(p.Name)),
			field.Step{Hint: field.HintRemovePool, Name: p.Name, Namespace: p.Namespace})
		return fmt.Errorf("%w: %v", left, err)
	}
	// The garbage collector would remove the members too; deleting them
	// now means a failed create leaves nothing even for a moment longer.
	if _, err := deleteWarmMembers(cctx, cs, p); err != nil {
		return fmt.Errorf("cleaning up failed; members of pool %q may be left in namespace %q until the garbage collector removes them: %v", p.Name, p.Namespace, err)
	}
	return nil
}

// ScalePool sets the pool's size and reconciles it.
func ScalePool(ctx context.Context, cs kubernetes.Interface, namespace, name string, size int, o PoolOptions) (*PoolStatus, error) {
	if err := ValidatePoolSize(size, false); err != nil {
		return nil, err
	}
	p, err := GetPool(ctx, cs, namespace, name)
	if err != nil {
		return nil, err
	}
	patch := fmt.Sprintf(`{"metadata":{"uid":%q,"annotations":{%q:%q}}}`, p.UID, AnnotationPoolSize, strconv.Itoa(size))
	t, err := cs.CoreV1().PodTemplates(namespace).Patch(ctx, PoolTemplateName(name), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("scaling pool %q: %w", name, err)
	}
	if p, err = PoolFromTemplate(t); err != nil {
		return nil, err
	}
	st, err := Reconcile(ctx, cs, p)
	if err != nil || !o.Wait || size == 0 {
		return st, err
	}
	return WaitForPool(ctx, cs, p, o.Timeout, o.Progress)
}

// DeletePool deletes the pool's definition and its warm members. Sandboxes
// claimed from it are not its members any more (a claim drops the
// ownerReference) and are never touched; kept counts them.
func DeletePool(ctx context.Context, cs kubernetes.Interface, namespace, name string) (removed []*corev1.Pod, kept int, err error) {
	p, err := GetPool(ctx, cs, namespace, name)
	if err != nil {
		return nil, 0, err
	}
	// Members first, while the pool's definition still exists, so that
	// they are counted here and not raced by the garbage collector. A
	// member a claim is taking right now: whichever write lands first
	// wins. One made after this list (a claimant's replacement, a
	// concurrent reconcile) is removed by the garbage collector once the
	// definition is gone: its owner is.
	removed, err = deleteWarmMembers(ctx, cs, p)
	if err != nil {
		return removed, 0, fmt.Errorf("deleting the warm sandboxes of pool %q: %w", name, err)
	}
	err = cs.CoreV1().PodTemplates(namespace).Delete(ctx, PoolTemplateName(name), metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: ptr.To(p.UID)},
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return removed, 0, &PoolNotFoundError{Name: name, Namespace: namespace}
	}
	if err != nil {
		return removed, 0, fmt.Errorf("deleting pool %q: %w", name, err)
	}
	if removed == nil {
		removed = []*corev1.Pod{} // the pool itself is gone
	}
	list, lerr := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(name, false)})
	if lerr == nil {
		for i := range list.Items {
			if classify(&list.Items[i], p) == stateClaimed {
				kept++
			}
		}
	}
	return removed, kept, err
}

// deleteWarmMembers deletes every unclaimed member of p (of any generation),
// each only while it is unclaimed.
func deleteWarmMembers(ctx context.Context, cs kubernetes.Interface, p *Pool) ([]*corev1.Pod, error) {
	list, err := cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(p.Name, true)})
	if err != nil {
		return nil, err
	}
	var removed []*corev1.Pod
	var errs []error
	for i := range list.Items {
		pod := &list.Items[i]
		if isMember(pod, p.Name) != nil || pod.DeletionTimestamp != nil {
			continue
		}
		switch err := deleteWarmMember(ctx, cs, p, pod); {
		case err == nil:
			removed = append(removed, pod)
		case apierrors.IsNotFound(err), errors.Is(err, errClaimedMeanwhile):
			// Claimed (or deleted) meanwhile: not ours to remove any more.
		default:
			errs = append(errs, fmt.Errorf("pod %s: %w", pod.Name, err))
		}
	}
	return removed, errors.Join(errs...)
}

// errClaimedMeanwhile: a member changed into something else than a warm
// member of the pool while it was being deleted.
var errClaimedMeanwhile = errors.New("claimed meanwhile")

// deleteWarmMember deletes a member unless a claim took it. The delete is
// preconditioned on what was read; a conflict is not always a claim (the
// scheduler and the kubelet write a member's status too), so the member is
// read again and, while it is still a warm member of the pool, deleted as
// it now is.
func deleteWarmMember(ctx context.Context, cs kubernetes.Interface, p *Pool, pod *corev1.Pod) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		err := deleteMember(ctx, cs, pod)
		if !apierrors.IsConflict(err) {
			return err
		}
		fresh, gerr := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		switch {
		case gerr != nil:
			return gerr
		case fresh.UID != pod.UID || fresh.DeletionTimestamp != nil || isMember(fresh, p.Name) != nil:
			return errClaimedMeanwhile
		}
		*pod = *fresh
		return err
	})
}
