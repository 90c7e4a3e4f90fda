package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
)

// claimedWorkspace is the workspace of sandbox name as a claim from pool
// "warm" leaves it: named as the member, holding the name by label, with
// the record, owned by nobody.
func claimedWorkspace(t *testing.T, cs kubernetes.Interface, name, member string) *corev1.PersistentVolumeClaim {
	t.Helper()
	s := persistentSpec(name)
	s.Workspace.ClaimName = PoolMemberPrefix("warm") + member
	w := s.WorkspaceClaim()
	w.Labels[LabelPool] = "warm"
	got, err := cs.CoreV1().PersistentVolumeClaims("ns").Create(context.Background(), w, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A workspace claimed from a pool keeps its member's name: it is found by
// its label, its record names it, and a Pod made from the record mounts it.
func TestClaimedWorkspaceIsFoundByItsLabel(t *testing.T) {
	cs := fakecluster.New()
	w := claimedWorkspace(t, cs, "task", "abcde")
	if err := OursWorkspace(w, "task"); err != nil {
		t.Fatalf("OursWorkspace: %v", err)
	}
	got, err := FindWorkspace(context.Background(), cs, "ns", "task")
	if err != nil || got.UID != w.UID {
		t.Fatalf("FindWorkspace = %v, %v", got, err)
	}
	s, err := SpecOf(got)
	if err != nil || s.Workspace.ClaimName != w.Name {
		t.Fatalf("SpecOf = %+v, %v: want the claim name %s", s, err, w.Name)
	}
	if pod := s.Pod(); MountedWorkspace(pod) != w.Name || !IsPersistent(pod) {
		t.Fatalf("a Pod from the record mounts %q, want %s", MountedWorkspace(pod), w.Name)
	}
	if d := NewSpec("plain", "ns"); MountedWorkspace(d.Pod()) != "" || IsPersistent(d.Pod()) {
		t.Fatal("a disposable sandbox's Pod mounts a workspace")
	}
	if strings.Contains(got.Annotations[AnnotationRecord], w.Name) {
		t.Fatal("the record stores the claim's name: it is the claim's own")
	}
}

// A pool-named workspace is a sandbox's only with its pool's label, as a
// claimed Pod is; a name of neither kind is refused.
func TestOursWorkspaceNames(t *testing.T) {
	cs := fakecluster.New()
	w := claimedWorkspace(t, cs, "task", "abcde")
	for name, mutate := range map[string]func(*corev1.PersistentVolumeClaim){
		"no pool label":      func(w *corev1.PersistentVolumeClaim) { delete(w.Labels, LabelPool) },
		"another pool":       func(w *corev1.PersistentVolumeClaim) { w.Labels[LabelPool] = "other" },
		"the cold pool":      func(w *corev1.PersistentVolumeClaim) { w.Labels[LabelPool] = PoolActive },
		"another sandbox's":  func(w *corev1.PersistentVolumeClaim) { w.Name = WorkspaceName("other") },
		"someone else's pod": func(w *corev1.PersistentVolumeClaim) { w.Name = "data" },
	} {
		c := w.DeepCopy()
		mutate(c)
		if err := OursWorkspace(c, "task"); err == nil || !strings.Contains(err.Error(), "nor that of a member of a sandbox pool") {
			t.Errorf("%s: OursWorkspace = %v", name, err)
		}
	}
}

// A sandbox claimed from a pool and suspended holds its name against a
// cold create (disposable or persistent), which leaves nothing behind.
func TestClaimedSuspendedSandboxHoldsItsName(t *testing.T) {
	cs := fakecluster.New()
	w := claimedWorkspace(t, cs, "task", "abcde")
	for _, persist := range []bool{false, true} {
		again := NewSpec("task", "ns")
		if persist {
			again = persistentSpec("task")
		}
		_, err := Create(context.Background(), cs, &again, CreateOptions{SecretValues: map[string]string{"API_KEY": "x"}})
		var taken *AlreadyExistsError
		if !errors.As(err, &taken) {
			t.Fatalf("persist=%v: create over a claimed suspended sandbox: %v, want AlreadyExistsError", persist, err)
		}
		pods, _ := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
		if len(pods.Items) != 0 {
			t.Fatalf("persist=%v: the refused create left pod %s", persist, pods.Items[0].Name)
		}
		if _, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), WorkspaceName("task"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("persist=%v: the refused create left its workspace: %v", persist, err)
		}
		if got, err := FindWorkspace(context.Background(), cs, "ns", "task"); err != nil || got.UID != w.UID {
			t.Fatalf("persist=%v: the claimed workspace: %v, %v", persist, got, err)
		}
	}
}

// Two workspaces holding one name are an error naming both, never a guess.
func TestTwoClaimedWorkspacesAreAnError(t *testing.T) {
	cs := fakecluster.New()
	claimedWorkspace(t, cs, "task", "aaaaa")
	claimedWorkspace(t, cs, "task", "bbbbb")
	_, err := FindWorkspace(context.Background(), cs, "ns", "task")
	if err == nil || !strings.Contains(err.Error(), `2 workspaces claim to be sandbox "task"`) || !strings.Contains(err.Error(), "kubectl delete pvc") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Delete(context.Background(), cs, "ns", "task", nil); err == nil {
		t.Fatal("delete guessed which workspace to delete")
	}
}

// Who may not list workspaces finds a cold sandbox's as before (one GET),
// and a disposable sandbox is not persistent, not forbidden.
func TestWorkspaceLookupWithoutList(t *testing.T) {
	cs := fakecluster.New()
	cs.PrependReactor("list", "persistentvolumeclaims", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("persistentvolumeclaims"), "", errors.New("no list"))
	})
	s := NewSpec("plain", "ns")
	if _, err := Create(context.Background(), cs, &s, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var notPersistent *NotPersistentError
	if _, err := FindWorkspace(context.Background(), cs, "ns", "plain"); !errors.As(err, &notPersistent) {
		t.Fatalf("FindWorkspace of a disposable sandbox = %v, want NotPersistentError", err)
	}
	p := persistentSpec("kept")
	if _, err := Create(context.Background(), cs, &p, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := FindWorkspace(context.Background(), cs, "ns", "kept"); err != nil {
		t.Fatal(err)
	}
}
