package sandbox

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/pager"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// What counts as a sandbox. Labels alone are not enough: anyone who can
// create a Pod can give it ours, and a Deployment whose template carries
// them would have its Pods exec'd into and deleted (and recreated). A Pod is
// a sandbox only when its labels, its name and its owners all agree with the
// way this plugin makes sandboxes.

// IsManaged reports whether an object carries the plugin's managed-by
// label. It is the first test, never the only one, for Pods (see Ours).
func IsManaged(obj metav1.Object) bool {
	return obj.GetLabels()[LabelManagedBy] == ManagedBy
}

// Ours returns nil when pod is the sandbox called name, or why it is not:
// the managed-by and sandbox labels must be ours, the Pod's name must be the
// one this plugin gives it (PodName(name) for a cold sandbox, the pool's
// member prefix for one claimed from a pool), and no controller may own it.
func Ours(pod *corev1.Pod, name string) error {
	l := pod.Labels
	switch {
	case l[LabelManagedBy] != ManagedBy:
		return fmt.Errorf("it lacks the label %s", ManagedSelector)
	case l[LabelSandbox] != name:
		return fmt.Errorf("its label %s is %q, not %q", LabelSandbox, l[LabelSandbox], name)
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		return fmt.Errorf("it is controlled by %s %q", ref.Kind, ref.Name)
	}
	if pod.Name != PodName(name) {
		pool := l[LabelPool]
		if pool == "" || pool == PoolActive || !strings.HasPrefix(pod.Name, PoolMemberPrefix(pool)) {
			return fmt.Errorf("its name is neither %q nor that of a member of a sandbox pool", PodName(name))
		}
	}
	return nil
}

// Find returns the Pod of the sandbox called name. A cold sandbox costs one
// GET; a sandbox claimed from a pool (whose Pod keeps its generated name) a
// GET and a LIST by label. Pods that carry the sandbox's labels but fail
// Ours are refused with a NotManagedError naming the reason.
func Find(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*corev1.Pod, error) {
	podName := PodName(name)
	pod, err := cs.CoreV1().Pods(namespace).Get(ctx, podName, metav1.GetOptions{})
	switch {
	case err == nil:
		if why := Ours(pod, name); why != nil {
			return nil, &NotManagedError{Name: name, Namespace: namespace, PodName: podName, Reason: why.Error()}
		}
		return pod, nil
	case !apierrors.IsNotFound(err):
		return nil, err
	}
	list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(map[string]string{LabelManagedBy: ManagedBy, LabelSandbox: name}).String(),
	})
	if err != nil {
		return nil, err
	}
	var live, terminating []*corev1.Pod
	var refused *NotManagedError
	for i := range list.Items {
		p := &list.Items[i]
		if why := Ours(p, name); why != nil {
			refused = &NotManagedError{Name: name, Namespace: namespace, PodName: p.Name, Reason: why.Error()}
			continue
		}
		if p.DeletionTimestamp != nil {
			terminating = append(terminating, p)
		} else {
			live = append(live, p)
		}
	}
	switch {
	case len(live) == 1:
		return live[0], nil
	case len(live) > 1:
		return nil, fmt.Errorf("%d pods claim to be sandbox %q in namespace %q (%s, %s); delete the extra one with: kubectl delete pod -n %s %s",
			len(live), name, namespace, live[0].Name, live[1].Name, namespace, live[1].Name)
	case len(terminating) > 0:
		return terminating[0], nil
	case refused != nil:
		return nil, refused
	}
	return nil, &NotFoundError{Name: name, Namespace: namespace}
}

// List returns the sandboxes in namespace ("" for all namespaces) that also
// match selector. Pods carrying our labels that fail Ours are left out. It
// reads them in pages of 500, as kubectl get does (--chunk-size): a
// thousand sandboxes are never one response the API server must build
// whole.
func List(ctx context.Context, cs kubernetes.Interface, namespace, selector string) ([]corev1.Pod, error) {
	sel, err := Selector(selector)
	if err != nil {
		return nil, err
	}
	pages := pager.New(pager.SimplePageFunc(func(opts metav1.ListOptions) (runtime.Object, error) {
		return cs.CoreV1().Pods(namespace).List(ctx, opts)
	}))
	var pods []corev1.Pod
	err = pages.EachListItem(ctx, metav1.ListOptions{LabelSelector: sel}, func(obj runtime.Object) error {
		if p, ok := obj.(*corev1.Pod); ok && Ours(p, p.Labels[LabelSandbox]) == nil {
			pods = append(pods, *p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pods, nil
}

// Selector adds the sandbox requirements to a user's label selector, so no
// selector can ever reach Pods the plugin did not create, nor warm pool
// members that nobody has claimed yet.
func Selector(user string) (string, error) {
	if strings.TrimSpace(user) == "" {
		return SandboxSelector, nil
	}
	if _, err := labels.Parse(user); err != nil {
		return "", field.Invalid("selector", "invalid `selector` %q: %v", user, err)
	}
	return SandboxSelector + "," + user, nil
}

// NameOf returns the sandbox name of a Pod that passed Ours.
func NameOf(pod *corev1.Pod) string { return pod.Labels[LabelSandbox] }
