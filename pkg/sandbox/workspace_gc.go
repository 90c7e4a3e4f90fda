package sandbox

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// What gc does for persistent sandboxes: a Pod that ended by itself (TTL,
// idle) is an auto-suspension, so gc stamps the workspace with when and
// why and deletes the Pod, keeping the work; a workspace suspended for
// longer than its Retain is deleted, with its Secret.

// suspendedPod is the garbage of a persistent sandbox whose Pod ended.
func suspendedPod(pod *corev1.Pod) Garbage {
	name := NameOf(pod)
	g := Garbage{Kind: "sandbox", Namespace: pod.Namespace, Name: name, uid: pod.UID, pod: pod,
		Why: whyFinished(pod) + "; suspended, its workspace is kept"}
	g.remove = func(ctx context.Context, cs kubernetes.Interface) error {
		pvc, err := FindWorkspace(ctx, cs, pod.Namespace, name)
		if err != nil {
			return err
		}
		if _, _, ok := SuspendedSince(pvc); !ok {
			if _, err := stampSuspended(ctx, cs, pvc, finishedAt(pod), suspendedWhy(pod)); err != nil {
				return err
			}
		}
		err = DeletePod(ctx, cs, pod, ptr.To[int64](0))
		if _, gone := err.(*NotFoundError); gone {
			return nil
		}
		return err
	}
	return g
}

// findRetainedWorkspaces are the workspaces suspended past their Retain:
// no live Pod of their sandbox, stamped longer ago than Retain. A user who
// may not list claims has none of ours to collect.
func findRetainedWorkspaces(ctx context.Context, cs kubernetes.Interface, namespace string, pods []corev1.Pod, now time.Time) ([]Garbage, error) {
	list, err := cs.CoreV1().PersistentVolumeClaims(namespace).List(ctx, metav1.ListOptions{LabelSelector: SandboxSelector})
	if apierrors.IsForbidden(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	running := map[string]bool{} // namespace/sandbox with a Pod that has not ended
	for i := range pods {
		if p := &pods[i]; NameOf(p) != "" && !finished(p) {
			running[p.Namespace+"/"+NameOf(p)] = true
		}
	}
	var out []Garbage
	for i := range list.Items {
		pvc := &list.Items[i]
		name := pvc.Labels[LabelSandbox]
		if OursWorkspace(pvc, name) != nil || pvc.DeletionTimestamp != nil || running[pvc.Namespace+"/"+name] {
			continue
		}
		spec, err := SpecOf(pvc)
		if err != nil {
			continue // not ours to judge: delete says so when asked
		}
		until, ok := RetainedUntil(pvc, spec)
		if !ok || now.Before(until) {
			continue
		}
		since, _, _ := SuspendedSince(pvc)
		uid, rv := pvc.UID, pvc.ResourceVersion
		out = append(out, NewGarbage("workspace", pvc.Namespace, name,
			fmt.Sprintf("suspended since %s, longer than its retain (%s)", since.UTC().Format(time.RFC3339), spec.Workspace.Retain),
			func(ctx context.Context, cs kubernetes.Interface) error {
				return cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).Delete(ctx, pvc.Name, metav1.DeleteOptions{
					Preconditions:     &metav1.Preconditions{UID: ptr.To(uid), ResourceVersion: ptr.To(rv)},
					PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
				})
			}))
	}
	return out, nil
}
