package sandbox

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

func createdFor(t *testing.T, withNamespace bool) (*Created, *corev1.Pod, *corev1.Namespace) {
	t.Helper()
	s := NewSpec("demo", "ns")
	pod := s.Pod()
	pod.UID = "pod-uid"
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", UID: "ns-uid"}}
	c := &Created{Pod: pod}
	if withNamespace {
		c.Namespace = ns
	}
	return c, pod, ns
}

func TestCreatedDelete(t *testing.T) {
	ctx := context.Background()
	c, pod, ns := createdFor(t, true)
	cs := fakeCluster(pod, ns)
	terminating, err := c.Delete(ctx, cs, time.Minute)
	if err != nil || terminating {
		t.Fatalf("%v %v", terminating, err)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(ctx, pod.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod still there: %v", err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "ns", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the namespace Create made is still there: %v", err)
	}

	// Deleted already: fine.
	if _, err := c.Delete(ctx, cs, time.Minute); err != nil {
		t.Fatal(err)
	}

	// A kubelet slow to finish: deleted, still terminating after the wait,
	// and that is no error.
	c, pod, _ = createdFor(t, false)
	cs = fakeCluster(pod)
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, nil // accepted, never gone
	})
	terminating, err = c.Delete(ctx, cs, 200*time.Millisecond)
	if err != nil || !terminating {
		t.Fatalf("slow deletion: terminating %v, err %v", terminating, err)
	}

	// Refused: the error names the sandbox and how to remove it.
	c, pod, _ = createdFor(t, false)
	cs = fakeCluster(pod)
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name, errors.New("no"))
	})
	_, err = c.Delete(ctx, cs, time.Minute)
	if err == nil || !strings.Contains(err.Error(), `sandbox "demo" may be left in namespace "ns": `) || field.StepOf(err) != (field.Step{Hint: field.HintRemoveLeft, Name: "demo", Namespace: "ns"}) {
		t.Fatalf("refused: %v", err)
	}
}

type scriptRunner struct {
	out  string
	code int
}

func (r scriptRunner) Run(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
	_, _ = io.WriteString(stdout, r.out)
	if r.code != 0 {
		return utilexec.CodeExitError{Err: errors.New("exit"), Code: r.code}
	}
	return nil
}

func TestRunSetup(t *testing.T) {
	if err := RunSetup(context.Background(), scriptRunner{out: "fine"}, "true"); err != nil {
		t.Fatal(err)
	}
	// The sandbox's output is untrusted: bounded, control characters gone.
	noisy := strings.Repeat("x", 5000) + "\x1b[31mnpm ERR! 404 not found\n"
	err := RunSetup(context.Background(), scriptRunner{out: noisy, code: 1}, "npm install")
	if err == nil || !strings.HasPrefix(err.Error(), "exit code 1: ...") || !strings.HasSuffix(err.Error(), "?[31mnpm ERR! 404 not found") || len(err.Error()) > 2100 {
		t.Fatalf("%q", err)
	}
}
