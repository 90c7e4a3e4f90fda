package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// gc of many ended sandboxes (deleted many at once): each deleted one is
// reported in the order found; one the API server refuses is named with its
// reason, the command fails, and the others are deleted all the same. A
// running one is left alone.
func TestGCReportsEachInOrder(t *testing.T) {
	const n = 70
	objects := []runtime.Object{sandboxPod("alive", func(p *corev1.Pod) { p.UID = "alive" })}
	for i := range n {
		objects = append(objects, sandboxPod(fmt.Sprintf("s%02d", i), func(p *corev1.Pod) {
			p.UID = types.UID(p.Name)
			p.Status.Phase = corev1.PodSucceeded
		}))
	}
	cs := fakecluster.New(objects...)
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if name := a.(k8stesting.DeleteActionImpl).Name; name == sandbox.PodName("s41") {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, name, errors.New("not today"))
		}
		return false, nil, nil
	})
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := NewGCOptions(streams)
	o.Namespace, o.Clientset = "test", cs
	err := o.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "sandbox/s41: ") || !strings.Contains(err.Error(), "not today") {
		t.Fatalf("gc with a refusal: %v, want it named with its reason", err)
	}
	var want strings.Builder
	for i := range n {
		if name := fmt.Sprintf("s%02d", i); name != "s41" {
			fmt.Fprintf(&want, "sandbox/%s deleted (finished: %s)\n", name, "Succeeded")
		}
	}
	if got := out.String(); got != want.String() {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want.String())
	}
	left, err := cs.CoreV1().Pods("test").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 2 {
		t.Errorf("%d pods left, want alive and the refused s41", len(left.Items))
	}
}
