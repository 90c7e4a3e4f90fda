package main

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// lifecycleRows: one sandbox from nothing to exec-ready, and back to gone.
func lifecycleRows() []*Scenario {
	kubectlCreate := func(ctx context.Context, e *Env, name string) (Sample, error) {
		return e.kubectlCreateReady(ctx, name, nil, "", "")
	}
	// Not timed: rounds leave nothing behind for the next.
	deleteQuietly := func(ctx context.Context, e *Env, podName string) error {
		err := e.Clientset.CoreV1().Pods(e.Namespace).Delete(ctx, podName, metav1.DeleteOptions{})
		if err != nil {
			return err
		}
		return waitNone(ctx, e, metav1.ListOptions{FieldSelector: "metadata.name=" + podName})
	}
	return []*Scenario{
		{
			Name:    "create → exec-ready",
			Cluster: true,
			Setup:   needCluster,
			Ours: Side{
				Label: "kubectl agentkernel create --network open",
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.run(ctx, nil, e.ours("create", fmt.Sprintf("c%d", round), "--network", "open")...)
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error {
					_, err := e.run(ctx, nil, e.ours("delete", fmt.Sprintf("c%d", round))...)
					return err
				},
			},
			Kubectl: Side{
				Label: "kubectl create -f + kubectl wait --for=condition=Ready",
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return kubectlCreate(ctx, e, fmt.Sprintf("k%d", round))
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error {
					return deleteQuietly(ctx, e, fmt.Sprintf("k%d", round))
				},
			},
			Note: "the same hardened Pod; the network open on both sides, since kubectl makes no NetworkPolicy",
		},
		{
			Name:    "delete → gone",
			Cluster: true,
			Setup:   needCluster,
			Ours: Side{
				Label: "kubectl agentkernel delete",
				Prepare: func(ctx context.Context, e *Env, round int) error {
					_, err := e.run(ctx, nil, e.ours("create", fmt.Sprintf("d%d", round), "--network", "open")...)
					return err
				},
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.run(ctx, nil, e.ours("delete", fmt.Sprintf("d%d", round))...)
				},
			},
			Kubectl: Side{
				Label: "kubectl delete pod --wait",
				Prepare: func(ctx context.Context, e *Env, round int) error {
					_, err := kubectlCreate(ctx, e, fmt.Sprintf("dk%d", round))
					return err
				},
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.run(ctx, nil, e.kubectl("delete", "pod", fmt.Sprintf("dk%d", round), "--wait")...)
				},
			},
			Note: "both wait until the Pod is gone",
		},
	}
}
