package sandbox

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
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
