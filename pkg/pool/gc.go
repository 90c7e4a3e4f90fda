package pool

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// FindGarbage lists what gc would delete in namespace ("" for all): what
// sandbox.FindGarbage finds, and warm members ("pool-member") that ended or
// whose pool is gone.
func FindGarbage(ctx context.Context, cs kubernetes.Interface, namespace string) ([]sandbox.Garbage, error) {
	return sandbox.FindGarbage(ctx, cs, namespace, memberGarbage)
}

// memberGarbage is the sandbox.GarbageFinder of pools. A member is deleted
// by UID and resourceVersion, so one claimed meanwhile is left alone.
func memberGarbage(ctx context.Context, cs kubernetes.Interface, pods []*corev1.Pod) ([]sandbox.Garbage, error) {
	var out []sandbox.Garbage
	pools := map[string]types.UID{} // namespace/pool → UID of its PodTemplate ("" when none)
	for _, pod := range pods {
		finished := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
		pool := pod.Labels[sandbox.LabelPool]
		if pool == "" || isMember(pod, pool) != nil {
			continue
		}
		key := pod.Namespace + "/" + pool
		uid, seen := pools[key]
		if !seen {
			t, err := cs.CoreV1().PodTemplates(pod.Namespace).Get(ctx, PoolTemplateName(pool), metav1.GetOptions{})
			switch {
			case err == nil && sandbox.IsManaged(t):
				uid = t.UID
			case err != nil && !apierrors.IsNotFound(err):
				return nil, err
			}
			pools[key] = uid
		}
		remove := func(ctx context.Context, cs kubernetes.Interface) error { return deleteMember(ctx, cs, pod) }
		switch {
		case uid == "" || !ownedByPool(pod, uid):
			out = append(out, sandbox.NewGarbage("pool-member", pod.Namespace, pod.Name,
				fmt.Sprintf("a warm member of pool %q, which no longer exists", pool), remove))
		case finished:
			out = append(out, sandbox.NewGarbage("pool-member", pod.Namespace, pod.Name,
				fmt.Sprintf("a warm member of pool %q that ended (%s)", pool, sandbox.Status(pod)), remove))
		}
	}
	return out, nil
}
