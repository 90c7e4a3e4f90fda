package localcluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"
)

// AddSimulatedNodes registers n more Nodes, named prefix-0 … prefix-(n-1),
// for the cluster's one kwok to manage beside the node called like (the
// cluster's NodeName): the same capacity and the same kubelet endpoint, so
// exec and logs on their Pods reach the same host. A node is a few API
// objects and a lease kwok renews, which is what makes the scale tests'
// fifty cheap. Nodes already there are kept.
func AddSimulatedNodes(ctx context.Context, client kubernetes.Interface, like, prefix string, n int) ([]string, error) {
	model, err := client.CoreV1().Nodes().Get(ctx, like, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading the simulated node %q to copy: %w", like, err)
	}
	if model.Annotations[kwokNodeAnnotationKey] != kwokNodeAnnotationValue {
		return nil, fmt.Errorf("node %q is not managed by the cluster's kwok", like)
	}
	port := int(model.Status.DaemonEndpoints.KubeletEndpoint.Port)
	names := make([]string, n)
	errs := make([]error, n)
	workqueue.ParallelizeUntil(ctx, 16, n, func(i int) {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
		_, err := client.CoreV1().Nodes().Create(ctx, kwokNode(names[i], port), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			errs[i] = fmt.Errorf("adding simulated node %s: %w", names[i], err)
		}
	})
	for _, err := range errs {
		if err != nil {
			return names, err
		}
	}
	return names, ctx.Err()
}

// RemoveSimulatedNodes deletes nodes AddSimulatedNodes made (gone already is
// not an error).
func RemoveSimulatedNodes(ctx context.Context, client kubernetes.Interface, names []string) error {
	errs := make([]error, len(names))
	workqueue.ParallelizeUntil(ctx, 16, len(names), func(i int) {
		err := client.CoreV1().Nodes().Delete(ctx, names[i], metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs[i] = err
		}
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// SimulatedNodeReady reports whether kwok has taken node on (it marks it Ready).
func SimulatedNodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
