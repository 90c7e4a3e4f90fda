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

// delete --all of many sandboxes: each deleted one is reported, in list
// order; each that could not be is named with its reason, the command fails,
// and the others are deleted all the same (and waited for).
func TestDeleteAllReportsEachFailure(t *testing.T) {
	const n = 70
	var objects []runtime.Object
	for i := range n {
		objects = append(objects, sandboxPod(fmt.Sprintf("s%02d", i), func(p *corev1.Pod) { p.UID = types.UID(p.Name) }))
	}
	cs := fakecluster.New(objects...)
	refused := map[string]bool{sandbox.PodName("s03"): true, sandbox.PodName("s41"): true}
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if name := a.(k8stesting.DeleteActionImpl).Name; refused[name] {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, name, errors.New("not today"))
		}
		return false, nil, nil
	})
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := NewDeleteOptions(streams)
	o.All, o.Namespace, o.Clientset = true, "test", cs
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	err := o.Run(context.Background())
	if err == nil {
		t.Fatal("delete --all with two refusals succeeded")
	}
	if strings.Count(err.Error(), "deleting sandbox") != 2 || strings.Contains(err.Error(), "not gone") {
		t.Errorf("want the two refusals and nothing else (the rest were waited for): %v", err)
	}
	for _, name := range []string{"s03", "s41"} {
		if !strings.Contains(err.Error(), fmt.Sprintf("deleting sandbox %q in namespace \"test\"", name)) {
			t.Errorf("the error does not name %s: %v", name, err)
		}
	}
	var want strings.Builder
	for i := range n {
		if name := fmt.Sprintf("s%02d", i); !refused[sandbox.PodName(name)] {
			fmt.Fprintf(&want, "sandbox/%s deleted\n", name)
		}
	}
	if out.String() != want.String() {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want.String())
	}
	left, err := cs.CoreV1().Pods("test").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 2 {
		t.Errorf("%d pods left, want the 2 refused", len(left.Items))
	}
}

// Several names: each is reported in the order given; a missing one fails
// the command unless --ignore-not-found.
func TestDeleteNamesInOrder(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		uid := func(p *corev1.Pod) { p.UID = types.UID(p.Name) }
		cs := fakecluster.New(sandboxPod("a", uid), sandboxPod("b", uid), sandboxPod("c", uid))
		streams, _, out, _ := genericiooptions.NewTestIOStreams()
		o := NewDeleteOptions(streams)
		o.Names, o.Namespace, o.Clientset, o.IgnoreNotFound = []string{"c", "ghost", "a", "b"}, "test", cs, ignore
		err := o.Run(context.Background())
		if out.String() != "sandbox/c deleted\nsandbox/a deleted\nsandbox/b deleted\n" {
			t.Errorf("ignore=%v: stdout %q", ignore, out)
		}
		var notFound *sandbox.NotFoundError
		if ignore && err != nil || !ignore && !errors.As(err, &notFound) {
			t.Errorf("ignore=%v: %v", ignore, err)
		}
	}
}
