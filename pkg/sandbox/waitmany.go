package sandbox

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// WaitForAllDeleted waits, up to timeout in all, until every one of pods
// (by UID) is gone, and returns one error for each that is not. Many Pods
// are watched through one list and watch of the plugin's Pods in their
// namespace (all namespaces when they are in several), not one per Pod:
// two requests for a thousand sandboxes instead of two thousand.
func WaitForAllDeleted(parent context.Context, cs kubernetes.Interface, pods []*corev1.Pod, timeout time.Duration) []error {
	ctx := parent
	switch len(pods) {
	case 0:
		return nil
	case 1:
		if err := WaitForDeleted(ctx, cs, pods[0], timeout); err != nil {
			return []error{err}
		}
		return nil
	}
	namespace := pods[0].Namespace
	left := make(map[types.UID]*corev1.Pod, len(pods))
	for _, p := range pods {
		left[p.UID] = p
		if p.Namespace != namespace {
			namespace = ""
		}
	}
	ctx, cancel := watchtools.ContextWithOptionalTimeout(ctx, timeout)
	defer cancel()
	ctx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	// Those not in the first list were gone before the watch began.
	listed := func(store cache.Store) (bool, error) {
		there := make(map[types.UID]bool, len(left))
		for _, obj := range store.List() {
			if p, ok := obj.(*corev1.Pod); ok {
				there[p.UID] = true
			}
		}
		for uid := range left {
			if !there[uid] {
				delete(left, uid)
			}
		}
		return len(left) == 0, nil
	}
	lw := podsListWatch(cs, namespace, metav1.ListOptions{LabelSelector: ManagedSelector}, refuse)
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, listed, func(ev watch.Event) (bool, error) {
		if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Deleted {
			delete(left, p.UID)
		}
		return len(left) == 0, nil
	})
	if err := refused(ctx); err != nil {
		return []error{err}
	}
	switch {
	case err == nil:
		return nil
	case !IsTimeout(err):
		return []error{err}
	}
	errs := make([]error, 0, len(left))
	for _, p := range pods { // in the order given
		if _, ok := left[p.UID]; ok {
			errs = append(errs, notGone(parent, p, timeout))
		}
	}
	return errs
}
