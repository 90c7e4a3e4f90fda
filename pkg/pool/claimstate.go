package pool

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

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// The pool's side of a claim's progress (see pkg/sandbox claimstate.go):
// marking a claim complete, and making way for a claim of a name whose
// earlier claim died.

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
			"annotations":     map[string]string{sandbox.AnnotationClaimState: sandbox.ClaimComplete},
		}})
		got, err := cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			return got, nil
		}
		if !apierrors.IsConflict(err) || attempt == 4 {
			return nil, fmt.Errorf("marking the claim of sandbox %q complete: %w", sandbox.NameOf(pod), err)
		}
		cur, err = cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("marking the claim of sandbox %q complete: %w", sandbox.NameOf(pod), err)
		}
		if cur.UID != pod.UID || cur.Annotations[AnnotationClaim] != id || cur.DeletionTimestamp != nil {
			return nil, fmt.Errorf("sandbox %q was removed or replaced while its claim was being finished", sandbox.NameOf(pod))
		}
	}
}

// settleUnfinished makes way for a claim of a name whose earlier claim
// from the same pool did not finish: it waits for one still within
// ClaimGrace to finish or die, and deletes one that died (by UID and
// resourceVersion, so a claim finishing at that moment is left alone). A
// sandbox of the name that is whole, or from elsewhere, is left for the
// claim to back off from as usual.
func settleUnfinished(ctx context.Context, cs kubernetes.Interface, claim *sandbox.Spec, p *Pool) error {
	sel := labels.SelectorFromSet(labels.Set{sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelSandbox: claim.Name, sandbox.LabelPool: p.Name}).String()
	for {
		list, err := cs.CoreV1().Pods(claim.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		waiting := false
		for i := range list.Items {
			pod := &list.Items[i]
			if sandbox.Ours(pod, claim.Name) != nil || pod.DeletionTimestamp != nil || sandbox.ClaimUnfinished(pod, time.Now()) == nil {
				continue
			}
			if !sandbox.StaleClaim(pod, time.Now()) {
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
