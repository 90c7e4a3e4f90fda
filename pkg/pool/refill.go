package pool

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// A claimed member's replacement.

// refill creates the member that replaces a claimed one, from the pool's
// definition as its PodTemplate has it now (not as the member's annotation
// says: whoever may patch Pods must not choose what a claimant creates).
// A pool that was deleted, or deleted and made again (another UID), gets
// no replacement from this claim. If the pool is deleted just after this
// looked, the garbage collector removes the new member: its owner is gone.
func refill(ctx context.Context, cs kubernetes.Interface, claimed *corev1.Pod) error {
	owner, ok := poolOwner(claimed)
	if !ok {
		return fmt.Errorf("pool member %s has no owner pool to refill", claimed.Name)
	}
	cctx, cancel := sandbox.CleanupContext(ctx)
	defer cancel()
	name := claimed.Labels[sandbox.LabelPool]
	p, err := GetPool(cctx, cs, claimed.Namespace, name)
	var gone *PoolNotFoundError
	switch {
	case errors.As(err, &gone):
		return nil
	case err != nil:
		return topUp(fmt.Errorf("refilling pool %q: %w", name, err), claimed.Namespace)
	case p.UID != owner.UID:
		return nil
	}
	if _, err := createMember(cctx, cs, p.memberSpec()); err != nil {
		return topUp(fmt.Errorf("refilling pool %q: %w", name, err), claimed.Namespace)
	}
	return nil
}

// topUp is err, a failed refill, naming how to top the pools in namespace
// up.
func topUp(err error, namespace string) error {
	return field.WithStep(err, field.Step{Hint: field.HintTopUp, Namespace: namespace})
}
