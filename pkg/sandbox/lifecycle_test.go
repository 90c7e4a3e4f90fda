package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// recordCreates returns the kinds created, in order.
func recordCreates(cs *fake.Clientset) *[]string {
	var order []string
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		order = append(order, a.GetResource().Resource)
		return false, nil, nil
	})
	return &order
}

func TestCreateOrderAndOwnership(t *testing.T) {
	cs := fake.NewClientset()
	order := recordCreates(cs)
	s := NewSpec("demo", "ns")
	s.SecretEnvNames = []string{"API_KEY"}
	created, err := Create(context.Background(), cs, &s, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}, CreateNamespace: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "namespaces,secrets,networkpolicies,pods"
	if got := strings.Join(*order, ","); got != want {
		t.Fatalf("created %s, want %s: the NetworkPolicy must exist before the Pod", got, want)
	}
	ns, _ := cs.CoreV1().Namespaces().Get(context.Background(), "ns", metav1.GetOptions{})
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Fatalf("namespace labels: %v", ns.Labels)
	}
	np, _ := cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), "agentkernel-demo", metav1.GetOptions{})
	sec, _ := cs.CoreV1().Secrets("ns").Get(context.Background(), "agentkernel-demo-env", metav1.GetOptions{})
	for what, refs := range map[string][]metav1.OwnerReference{"networkpolicy": np.OwnerReferences, "secret": sec.OwnerReferences} {
		if len(refs) != 1 || refs[0].Kind != "Pod" || refs[0].Name != created.Pod.Name {
			t.Errorf("%s is not owned by the pod: %+v", what, refs)
		}
	}
}

func TestCreateCleansUpOnFailure(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "agentkernel-demo", errors.New(`violates PodSecurity "restricted:latest"`))
	})
	s := NewSpec("demo", "fresh")
	s.SecretEnvNames = []string{"K"}
	_, err := Create(context.Background(), cs, &s, CreateOptions{SecretValues: map[string]string{"K": "v"}, CreateNamespace: true})
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Fatalf("err = %v", err)
	}
	nps, _ := cs.NetworkingV1().NetworkPolicies("fresh").List(context.Background(), metav1.ListOptions{})
	secs, _ := cs.CoreV1().Secrets("fresh").List(context.Background(), metav1.ListOptions{})
	nss, _ := cs.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if len(nps.Items)+len(secs.Items)+len(nss.Items) != 0 {
		t.Fatalf("left behind: %d policies, %d secrets, %d namespaces", len(nps.Items), len(secs.Items), len(nss.Items))
	}
}

func TestCreateKeepsExistingNamespace(t *testing.T) {
	cs := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}})
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

func TestCreateRefusesTakenNames(t *testing.T) {
	spec := NewSpec("demo", "ns")
	mine := spec.Pod()
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agentkernel-other", Namespace: "ns"}}
	cs := fake.NewClientset(mine, foreign)
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

func TestGetAndDeleteOnlyManaged(t *testing.T) {
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agentkernel-x", Namespace: "ns", Labels: map[string]string{LabelSandbox: "x"}}}
	cs := fake.NewClientset(foreign)
	var notManaged *NotManagedError
	if _, err := Get(context.Background(), cs, "ns", "x"); !errors.As(err, &notManaged) {
		t.Fatalf("Get = %v", err)
	}
	if _, err := Delete(context.Background(), cs, "ns", "x", nil); !errors.As(err, &notManaged) {
		t.Fatalf("Delete = %v", err)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(context.Background(), "agentkernel-x", metav1.GetOptions{}); err != nil {
		t.Fatal("an unmanaged pod was deleted")
	}
	var notFound *NotFoundError
	if _, err := Delete(context.Background(), cs, "ns", "missing", nil); !errors.As(err, &notFound) {
		t.Fatalf("Delete(missing) = %v", err)
	}
	if !strings.Contains(notFound.Error(), "kubectl agentkernel list -A") {
		t.Fatalf("message does not say what to do: %v", notFound)
	}
}

func TestDeleteRemovesOrphans(t *testing.T) {
	s := NewSpec("demo", "ns")
	orphan := s.NetworkPolicy() // made before a Pod that never came
	s.SecretEnvNames = []string{"K"}
	owned := s.Secret(map[string]string{"K": "v"})
	owned.OwnerReferences = []metav1.OwnerReference{{Kind: "Pod", Name: "agentkernel-demo", UID: "u"}}
	cs := fake.NewClientset(orphan, owned)
	if _, err := Delete(context.Background(), cs, "ns", "demo", nil); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if _, err := cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), orphan.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatal("orphaned NetworkPolicy not removed")
	}
	if _, err := cs.CoreV1().Secrets("ns").Get(context.Background(), owned.Name, metav1.GetOptions{}); err != nil {
		t.Fatal("an owned secret is the garbage collector's to remove, not ours")
	}
}

func TestSelectorAlwaysManaged(t *testing.T) {
	for in, want := range map[string]string{"": ManagedSelector, "team=ml": ManagedSelector + ",team=ml"} {
		if got, err := Selector(in); err != nil || got != want {
			t.Errorf("Selector(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := Selector("a in (b"); err == nil {
		t.Error("bad selector accepted")
	}
}

func podWith(mutate func(*corev1.Pod)) *corev1.Pod {
	s := NewSpec("demo", "ns")
	p := s.Pod()
	mutate(p)
	return p
}

func waiting(reason string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodPending
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "msg of " + reason}}}}
	}
}

func TestStarted(t *testing.T) {
	ready := func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	cases := map[string]struct {
		mutate     func(*corev1.Pod)
		started    bool
		failReason string
	}{
		"pending":         {func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }, false, ""},
		"creating":        {waiting("ContainerCreating"), false, ""},
		"ready":           {ready, true, ""},
		"running unready": {func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }, false, ""},
		"image pull":      {waiting("ImagePullBackOff"), false, "ImagePullBackOff"},
		"err image pull":  {waiting("ErrImagePull"), false, "ErrImagePull"},
		"config error":    {waiting("CreateContainerConfigError"), false, "CreateContainerConfigError"},
		"crash loop":      {waiting("CrashLoopBackOff"), false, "CrashLoopBackOff"},
		"failed":          {func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }, false, "Failed"},
		"deleting":        {func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: time.Now()} }, false, "Terminating"},
		"exited": {func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 127, Reason: "Error"}}}}
		}, false, "Exited"},
		"unschedulable": {func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available: insufficient cpu"}}
		}, false, "Unschedulable"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ok, err := Started(podWith(tc.mutate), "demo")
			if ok != tc.started {
				t.Errorf("started = %v", ok)
			}
			var se *StartError
			if tc.failReason == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.failReason != "" && (!errors.As(err, &se) || se.Reason != tc.failReason) {
				t.Fatalf("err = %v, want reason %s", err, tc.failReason)
			}
		})
	}
}

func TestWaitForRunningFailsFastWithReason(t *testing.T) {
	p := podWith(waiting("ImagePullBackOff"))
	cs := fake.NewClientset(p)
	start := time.Now()
	_, err := WaitForRunning(context.Background(), cs, "ns", "demo", time.Minute)
	var se *StartError
	if !errors.As(err, &se) || se.Reason != "ImagePullBackOff" || !strings.Contains(err.Error(), "--image") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("did not fail fast")
	}
}

func TestWaitForRunningTimeoutNamesState(t *testing.T) {
	cs := fake.NewClientset(podWith(waiting("ContainerCreating")))
	_, err := WaitForRunning(context.Background(), cs, "ns", "demo", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "ContainerCreating") || !strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("err = %v", err)
	}
}

func TestStatus(t *testing.T) {
	cases := map[string]func(*corev1.Pod){
		"Pending":          func(p *corev1.Pod) {},
		"Running":          func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning },
		"ImagePullBackOff": waiting("ImagePullBackOff"),
		"Terminating":      func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} },
		"Unschedulable": func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}}
		},
		"ExitCode:3": func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3}}}}
		},
	}
	for want, mutate := range cases {
		if got := Status(podWith(mutate)); got != want {
			t.Errorf("Status = %q, want %q", got, want)
		}
	}
}

func TestStartErrorMessages(t *testing.T) {
	for reason := range startHints {
		msg := (&StartError{Name: "d", Namespace: "n", Reason: reason}).Error()
		if !strings.Contains(msg, reason) || !strings.Contains(msg, "(") {
			t.Errorf("%s: %s", reason, msg)
		}
	}
}

// delete then create of the same name, before the garbage collector has
// removed the old sandbox's dependents, must work.
func TestCreateReplacesStaleDependents(t *testing.T) {
	old := NewSpec("demo", "ns")
	old.SecretEnvNames = []string{"K"}
	staleNP := old.NetworkPolicy()
	staleNP.UID = "old-np"
	staleNP.OwnerReferences = []metav1.OwnerReference{{Kind: "Pod", Name: "agentkernel-demo", UID: "gone"}}
	staleSecret := old.Secret(map[string]string{"K": "old"})
	staleSecret.UID = "old-secret"
	cs := fake.NewClientset(staleNP, staleSecret)
	s := NewSpec("demo", "ns")
	s.SecretEnvNames = []string{"K"}
	if _, err := Create(context.Background(), cs, &s, CreateOptions{SecretValues: map[string]string{"K": "new"}}); err != nil {
		t.Fatalf("Create over stale dependents: %v", err)
	}
	sec, err := cs.CoreV1().Secrets("ns").Get(context.Background(), "agentkernel-demo-env", metav1.GetOptions{})
	if err != nil || string(sec.Data["K"]) != "new" {
		t.Fatalf("secret not replaced: %v %v", sec, err)
	}

	// Objects of that name that are not ours stop the create, untouched.
	foreign := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "agentkernel-x", Namespace: "ns"}}
	cs = fake.NewClientset(foreign)
	s = NewSpec("x", "ns")
	if _, err := Create(context.Background(), cs, &s, CreateOptions{}); err == nil || !strings.Contains(err.Error(), "not made by kubectl agentkernel") {
		t.Fatalf("err = %v", err)
	}
	if _, err := cs.NetworkingV1().NetworkPolicies("ns").Get(context.Background(), "agentkernel-x", metav1.GetOptions{}); err != nil {
		t.Fatal("a foreign NetworkPolicy was deleted")
	}
}
