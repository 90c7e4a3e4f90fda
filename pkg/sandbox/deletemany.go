package sandbox

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"

	"github.com/agentkernel/kubectl-agentkernel/pkg/clientrate"
)

// A Deletion is how deleting one of many sandboxes went.
type Deletion struct {
	Name, Namespace string
	// Pod is the Pod deleted, to wait for; nil when there was none (a
	// suspended sandbox: its workspace was all there was).
	Pod *corev1.Pod
	Err error
}

// DeleteNamed deletes the sandboxes called names in namespace, each as
// Delete does, clientrate.Parallel at a time. done hears every outcome, in
// the order of names.
func DeleteNamed(ctx context.Context, cs kubernetes.Interface, namespace string, names []string, gracePeriod *int64, done func(Deletion)) {
	inOrder(ctx, len(names), func(i int) Deletion {
		pod, err := Delete(ctx, cs, namespace, names[i], gracePeriod)
		return Deletion{Name: names[i], Namespace: namespace, Pod: pod, Err: about(err, names[i], namespace)}
	}, func(i int) Deletion { return Deletion{Name: names[i], Namespace: namespace} }, done)
}

// DeleteListed deletes the sandboxes List and ListSuspended found, by the
// name and UID that were listed (DeletePod, DeleteWorkspace): the Pods, a
// persistent one's workspace with it, then the suspended sandboxes that have
// no Pod. clientrate.Parallel at a time; done hears every outcome, in that
// order.
func DeleteListed(ctx context.Context, cs kubernetes.Interface, pods []corev1.Pod, suspended []SuspendedSandbox, gracePeriod *int64, done func(Deletion)) {
	var podless []*SuspendedSandbox
	for i := range suspended {
		if suspended[i].Pod == nil { // an ended Pod is deleted with its workspace
			podless = append(podless, &suspended[i])
		}
	}
	one := func(i int) Deletion {
		if i < len(pods) {
			pod := &pods[i]
			err := DeletePod(ctx, cs, pod, gracePeriod)
			if err == nil && IsPersistent(pod) {
				_, err = DeleteWorkspace(ctx, cs, pod.Namespace, NameOf(pod))
			}
			return Deletion{Name: NameOf(pod), Namespace: pod.Namespace, Pod: pod, Err: about(err, NameOf(pod), pod.Namespace)}
		}
		s := podless[i-len(pods)]
		_, err := DeleteWorkspace(ctx, cs, s.Workspace.Namespace, s.Name())
		return Deletion{Name: s.Name(), Namespace: s.Workspace.Namespace, Err: err}
	}
	named := func(i int) Deletion {
		if i < len(pods) {
			return Deletion{Name: NameOf(&pods[i]), Namespace: pods[i].Namespace}
		}
		s := podless[i-len(pods)]
		return Deletion{Name: s.Name(), Namespace: s.Workspace.Namespace}
	}
	inOrder(ctx, len(pods)+len(podless), one, named, done)
}

// about names the sandbox in an error as the API server gave it, which names
// only a Pod: among many outcomes, each says whose it is.
func about(err error, name, namespace string) error {
	if _, raw := err.(apierrors.APIStatus); raw {
		return fmt.Errorf("deleting sandbox %q in namespace %q: %w", name, namespace, err)
	}
	return err
}

// inOrder runs do for 0..n-1, clientrate.Parallel at a time, and hands each
// result to done in index order as soon as it and every one before it are
// in: output reads as a sequential run's would, without waiting for the
// last. Once ctx ends no new one starts; those report ctx's cause, under
// the name named gives them.
func inOrder(ctx context.Context, n int, do, named func(i int) Deletion, done func(Deletion)) {
	results := make([]*Deletion, n)
	var mu sync.Mutex
	next := 0
	workqueue.ParallelizeUntil(ctx, clientrate.Parallel, n, func(i int) {
		d := do(i)
		mu.Lock()
		defer mu.Unlock()
		results[i] = &d
		for ; next < n && results[next] != nil; next++ {
			done(*results[next])
		}
	})
	for ; next < n; next++ {
		if results[next] == nil {
			d := named(next)
			d.Err = context.Cause(ctx)
			results[next] = &d
		}
		done(*results[next])
	}
}
