package pool

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// watchPool watches the Pods of pool p (members and claimed) and calls cond
// with all of them, by UID, after the initial list and after every change,
// until cond is done or fails, or the timeout passes.
func watchPool(ctx context.Context, cs kubernetes.Interface, p *Pool, timeout time.Duration, cond func(map[types.UID]*corev1.Pod) (bool, error)) error {
	ctx, cancel := watchtools.ContextWithOptionalTimeout(ctx, timeout)
	defer cancel()
	selector := poolSelector(p.Name, false)
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, options metav1.ListOptions) (runtime.Object, error) {
			options.LabelSelector = selector
			return cs.CoreV1().Pods(p.Namespace).List(ctx, options)
		},
		WatchFuncWithContext: func(ctx context.Context, options metav1.ListOptions) (watch.Interface, error) {
			options.LabelSelector = selector
			return cs.CoreV1().Pods(p.Namespace).Watch(ctx, options)
		},
	}, cs)
	pods := map[types.UID]*corev1.Pod{}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{},
		func(store cache.Store) (bool, error) {
			for _, obj := range store.List() {
				if pod, ok := obj.(*corev1.Pod); ok {
					pods[pod.UID] = pod
				}
			}
			return cond(pods)
		},
		func(ev watch.Event) (bool, error) {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				return false, nil
			}
			if ev.Type == watch.Deleted {
				delete(pods, pod.UID)
			} else {
				pods[pod.UID] = pod
			}
			return cond(pods)
		})
	return err
}
