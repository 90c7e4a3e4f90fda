package sandbox

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SuspendedSandbox is a persistent sandbox that is not running: its Pod
// was deleted by a suspend, or ended by itself (TTL, idle timeout, its main
// process) and is kept until something resumes or collects it.
type SuspendedSandbox struct {
	Workspace *corev1.PersistentVolumeClaim
	Spec      *Spec       // the record; nil when it does not read back
	Pod       *corev1.Pod // the ended Pod, if it is still there
	Since     time.Time   // zero when unknown
	Why       string
}

// Name is the sandbox's name.
func (s *SuspendedSandbox) Name() string { return s.Workspace.Labels[LabelSandbox] }

// ListSuspended returns the suspended sandboxes among the workspaces in
// namespace ("" for all) that match selector, given the sandbox Pods List
// found there. A user who may not list claims has none to show: nil.
func ListSuspended(ctx context.Context, cs kubernetes.Interface, namespace, selector string, pods []corev1.Pod) ([]SuspendedSandbox, error) {
	sel, err := Selector(selector)
	if err != nil {
		return nil, err
	}
	list, err := cs.CoreV1().PersistentVolumeClaims(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if apierrors.IsForbidden(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	podOf := map[string]*corev1.Pod{}
	for i := range pods {
		podOf[pods[i].Namespace+"/"+NameOf(&pods[i])] = &pods[i]
	}
	var out []SuspendedSandbox
	for i := range list.Items {
		pvc := &list.Items[i]
		name := pvc.Labels[LabelSandbox]
		if OursWorkspace(pvc, name) != nil {
			continue
		}
		pod := podOf[pvc.Namespace+"/"+name]
		if pod != nil && !finished(pod) {
			continue // running (or starting): List shows it
		}
		s := SuspendedSandbox{Workspace: pvc, Pod: pod}
		s.Spec, _ = SpecOf(pvc)
		var ok bool
		if s.Since, s.Why, ok = SuspendedSince(pvc); !ok && pod != nil {
			s.Since, s.Why = finishedAt(pod), suspendedWhy(pod)
		}
		out = append(out, s)
	}
	return out, nil
}
