package sandbox

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// The Pod is created gated, its dependents are created owned by it, and
// only then is the gate lifted: a Pod that can run always has its policy.
func TestCreateGatesPodUntilFenced(t *testing.T) {
	cs := fakeCluster()
	s := NewSpec("demo", "ns")
	s.SecretEnvNames = []string{"API_KEY"}
	created, err := Create(context.Background(), cs, &s, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}, CreateNamespace: true})
	if err != nil {
		t.Fatal(err)
	}
	var writes []string
	for _, a := range cs.Actions() {
		switch a := a.(type) {
		case k8stesting.CreateActionImpl:
			if a.GetResource().Resource == "selfsubjectreviews" {
				continue // who am I: a question, not a write
			}
			writes = append(writes, "create "+a.GetResource().Resource)
			switch obj := a.GetObject().(type) {
			case *corev1.Pod:
				if !slices.ContainsFunc(obj.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == FenceGate }) {
					t.Errorf("the pod was created without the %s gate: %v", FenceGate, obj.Spec.SchedulingGates)
				}
			case *corev1.Secret, *networkingv1.NetworkPolicy:
				refs := obj.(metav1.Object).GetOwnerReferences()
				if len(refs) != 1 || refs[0].UID != created.Pod.UID || refs[0].Kind != "Pod" || refs[0].Controller == nil || !*refs[0].Controller {
					t.Errorf("%T created without the pod as its controller: %+v", obj, refs)
				}
			}
		case k8stesting.PatchActionImpl:
			writes = append(writes, "patch "+a.GetResource().Resource)
			if a.GetPatchType() != "application/json-patch+json" || !strings.Contains(string(a.GetPatch()), `"op":"test","path":"/metadata/uid","value":"`+string(created.Pod.UID)) {
				t.Errorf("ungate patch does not test the pod's UID: %s", a.GetPatch())
			}
		}
	}
	want := []string{"create namespaces", "create pods", "create secrets", "create networkpolicies", "patch pods"}
	if !slices.Equal(writes, want) {
		t.Fatalf("writes %v, want %v", writes, want)
	}
	if len(created.Pod.Spec.SchedulingGates) != 0 {
		t.Fatalf("the pod is still gated: %v", created.Pod.Spec.SchedulingGates)
	}
	ns, _ := cs.CoreV1().Namespaces().Get(context.Background(), "ns", metav1.GetOptions{})
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Fatalf("namespace labels: %v", ns.Labels)
	}
}

// Gates put on the Pod by someone else (an admission webhook, say) stay.
func TestUngateKeepsOtherGates(t *testing.T) {
	s := NewSpec("demo", "ns")
	pod := s.Pod()
	pod.UID = "u1"
	pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/quota"}, {Name: FenceGate}}
	cs := fakeCluster(pod)
	got, err := Ungate(context.Background(), cs, pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.SchedulingGates) != 1 || got.Spec.SchedulingGates[0].Name != "example.com/quota" {
		t.Fatalf("gates after ungate: %v", got.Spec.SchedulingGates)
	}
	// A pod of the same name but another UID is not touched.
	pod.UID = "other"
	pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: FenceGate}}
	if _, err := Ungate(context.Background(), cs, pod); err == nil {
		t.Fatal("ungated a pod whose UID differs")
	}
}

func TestCreateCleansUpOnFailure(t *testing.T) {
	cs := fakeCluster()
	cs.PrependReactor("create", "networkpolicies", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "networkpolicies"}, "agentkernel-demo", errors.New("no"))
	})
	s := NewSpec("demo", "fresh")
	s.SecretEnvNames = []string{"K"}
	_, err := Create(context.Background(), cs, &s, CreateOptions{SecretValues: map[string]string{"K": "v"}, CreateNamespace: true})
	if err == nil || !strings.Contains(err.Error(), "NetworkPolicy") {
		t.Fatalf("err = %v", err)
	}
	pods, _ := cs.CoreV1().Pods("fresh").List(context.Background(), metav1.ListOptions{})
	secs, _ := cs.CoreV1().Secrets("fresh").List(context.Background(), metav1.ListOptions{})
	nss, _ := cs.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if len(pods.Items)+len(secs.Items)+len(nss.Items) != 0 {
		t.Fatalf("left behind: %d pods, %d secrets, %d namespaces", len(pods.Items), len(secs.Items), len(nss.Items))
	}
	for _, a := range cs.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok {
			if d.DeleteOptions.Preconditions == nil || d.DeleteOptions.Preconditions.UID == nil {
				t.Errorf("cleanup deleted %s %s without a UID precondition", d.GetResource().Resource, d.GetName())
			}
		}
	}
}

// Ctrl-C while the Pod's create request is in flight: the API server made
// the Pod, the answer never came. The call finds its Pod by its own mark
// and removes it; a Pod of the name that another call made is left alone.
func TestCreateInterruptedInFlightRemovesThePod(t *testing.T) {
	for _, theirs := range []bool{false, true} {
		cs := fakeCluster()
		ctx, cancel := context.WithCancel(context.Background())
		cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod).DeepCopy()
			if theirs {
				pod.Annotations[annotationCreateCall] = "another call"
			}
			pod.UID = "made-in-flight"
			if err := cs.Tracker().Create(corev1.SchemeGroupVersion.WithResource("pods"), pod, pod.Namespace); err != nil {
				t.Error(err)
			}
			cancel() // the answer never comes
			return true, nil, context.Canceled
		})
		s := NewSpec("demo", "ns")
		if _, err := Create(ctx, cs, &s, CreateOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		pods, _ := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
		if want := map[bool]int{false: 0, true: 1}[theirs]; len(pods.Items) != want {
			t.Errorf("another call's pod %v: %d pods left, want %d", theirs, len(pods.Items), want)
		}
	}
}

// A second interrupt stops the cleanup, and the error names what is left.
func TestCreateInterruptedCleanupNamesLeftovers(t *testing.T) {
	cs := fakeCluster()
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection lost")
	})
	cleanup, cancel := context.WithCancel(context.Background())
	cancel()
	ctx := WithCleanupContext(context.Background(), cleanup)
	s := NewSpec("demo", "ns")
	_, err := Create(ctx, cs, &s, CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "cleanup was interrupted") || !strings.Contains(err.Error(), "pod/agentkernel-demo") ||
		!strings.Contains(err.Error(), "networkpolicy/agentkernel-demo") || !strings.Contains(err.Error(), "kubectl delete -n ns") {
		t.Fatalf("err = %v", err)
	}
}

func TestCreateKeepsExistingNamespace(t *testing.T) {
	cs := fakeCluster(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}})
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("boom")
	})
	s := NewSpec("demo", "ns")
	if _, err := Create(context.Background(), cs, &s, CreateOptions{CreateNamespace: true}); err == nil {
		t.Fatal("want error")
	}
	if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "ns", metav1.GetOptions{}); err != nil {
		t.Fatalf("an existing namespace was deleted: %v", err)
	}
}

func TestCreateServerDryRunNeedsAnExistingNamespace(t *testing.T) {
	cs := fakeCluster()
	s := NewSpec("demo", "new-ns")
	_, err := Create(context.Background(), cs, &s, CreateOptions{ServerDryRun: true, CreateNamespace: true})
	if err == nil || !strings.Contains(err.Error(), `namespace "new-ns" does not exist yet`) || field.StepOf(err) != (field.Step{Hint: field.HintClientDryRun, Namespace: "new-ns"}) {
		t.Fatalf("err = %v", err)
	}
	if nss, _ := cs.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{}); len(nss.Items) != 0 {
		t.Fatal("a dry run created the namespace")
	}
	// With the namespace there, a server dry run sends every object, stores none.
	cs = fakeCluster(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "new-ns"}})
	if _, err := Create(context.Background(), cs, &s, CreateOptions{ServerDryRun: true, CreateNamespace: true}); err != nil {
		t.Fatal(err)
	}
	if pods, _ := cs.CoreV1().Pods("new-ns").List(context.Background(), metav1.ListOptions{}); len(pods.Items) != 0 {
		t.Fatal("a dry run stored the pod")
	}
}

func TestCreateRefusesTakenNames(t *testing.T) {
	spec := NewSpec("demo", "ns")
	mine := spec.Pod()
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agentkernel-other", Namespace: "ns"}}
	cs := fakeCluster(mine, foreign)
	s := NewSpec("demo", "ns")
	var exists *AlreadyExistsError
	if _, err := Create(context.Background(), cs, &s, CreateOptions{}); !errors.As(err, &exists) {
		t.Fatalf("err = %v", err)
	}
	s = NewSpec("other", "ns")
	var notManaged *NotManagedError
	if _, err := Create(context.Background(), cs, &s, CreateOptions{}); !errors.As(err, &notManaged) {
		t.Fatalf("err = %v", err)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(context.Background(), "agentkernel-other", metav1.GetOptions{}); err != nil {
		t.Fatal("the foreign pod must be left alone")
	}
}

// A sandbox claimed from a pool holds its name by label: a cold create of
// the same name backs off and removes what it made.
func TestCreateBacksOffFromAClaimedName(t *testing.T) {
	demo := NewSpec("demo", "ns")
	claimed := demo.Pod()
	claimed.Name = PoolMemberPrefix("warm") + "abcde"
	claimed.Labels[LabelPool] = "warm"
	claimed.UID = "claimed"
	cs := fakeCluster(claimed)
	s := NewSpec("demo", "ns")
	var exists *AlreadyExistsError
	if _, err := Create(context.Background(), cs, &s, CreateOptions{}); !errors.As(err, &exists) {
		t.Fatalf("err = %v", err)
	}
	pods, _ := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	nps, _ := cs.NetworkingV1().NetworkPolicies("ns").List(context.Background(), metav1.ListOptions{})
	if len(pods.Items) != 1 || pods.Items[0].UID != "claimed" || len(nps.Items) != 0 {
		t.Fatalf("left: %d pods (%v), %d policies", len(pods.Items), pods.Items, len(nps.Items))
	}
}

// delete then create of the same name, before the garbage collector has
// removed the old sandbox's dependents, must work — but only objects that
// are provably stale are replaced.
func TestCreateReplacesOnlyStaleDependents(t *testing.T) {
	old := NewSpec("demo", "ns")
	old.SecretEnvNames = []string{"K"}
	staleNP := old.NetworkPolicy()
	staleNP.UID = "old-np"
	staleNP.OwnerReferences = []metav1.OwnerReference{{Kind: "Pod", Name: "agentkernel-demo", UID: "gone"}}
	staleSecret := old.Secret(map[string]string{"K": "old"}) // owner-less: an older plugin's
	staleSecret.UID = "old-secret"
	cs := fakeCluster(staleNP, staleSecret)
	s := NewSpec("demo", "ns")
	s.SecretEnvNames = []string{"K"}
	created, err := Create(context.Background(), cs, &s, CreateOptions{SecretValues: map[string]string{"K": "new"}})
	if err != nil {
		t.Fatalf("Create over stale dependents: %v", err)
	}
	sec, err := cs.CoreV1().Secrets("ns").Get(context.Background(), "agentkernel-demo-env", metav1.GetOptions{})
	if err != nil || string(sec.Data["K"]) != "new" || sec.OwnerReferences[0].UID != created.Pod.UID {
		t.Fatalf("secret not replaced: %v %v", sec, err)
	}
	np, err := cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), "agentkernel-demo", metav1.GetOptions{})
	if err != nil || np.OwnerReferences[0].UID != created.Pod.UID {
		t.Fatalf("policy not replaced: %v %v", np, err)
	}

	// Owned by a Pod that still exists (a claimed sandbox's, whose Pod has
	// another name): refused, left alone, and the new Pod removed.
	x := NewSpec("x", "ns")
	livePod := x.Pod()
	livePod.Name, livePod.UID = PoolMemberPrefix("warm")+"zzzzz", "live"
	livePod.Labels[LabelPool] = "warm"
	liveNP := x.NetworkPolicy()
	liveNP.OwnerReferences = []metav1.OwnerReference{{Kind: "Pod", Name: livePod.Name, UID: "live"}}
	foreign := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "agentkernel-y", Namespace: "ns"}}
	cs = fakeCluster(livePod, liveNP, foreign)
	for name, want := range map[string]string{"x": "belongs to another sandbox", "y": "not made by kubectl agentkernel"} {
		s = NewSpec(name, "ns")
		if _, err := Create(context.Background(), cs, &s, CreateOptions{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("create %s: err = %v", name, err)
		}
		if _, err := cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), "agentkernel-"+name, metav1.GetOptions{}); err != nil {
			t.Fatalf("the NetworkPolicy of %s was deleted", name)
		}
		if _, err := cs.CoreV1().Pods("ns").Get(context.Background(), "agentkernel-"+name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("the refused create of %s left its pod: %v", name, err)
		}
	}
}
