package pool

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func finishedPod(name string, mutate func(*corev1.Pod)) *corev1.Pod {
	s := sandbox.NewSpec(name, "ns")
	p := s.Pod()
	p.UID = k8stypes.UID("uid-pod-" + p.Name)
	mutate(p)
	return p
}

// gc deletes sandboxes that ended (TTL, idle, exit), members that ended or
// whose pool is gone, and our objects whose owner Pod is gone — and nothing
// else: not a running sandbox, not a Pod that fails Ours, not an object
// without an owner or not made by us.
func TestGCFindsOnlyWhatEnded(t *testing.T) {
	expired := finishedPod("expired", func(p *corev1.Pod) {
		p.Status = corev1.PodStatus{Phase: corev1.PodFailed, Reason: "DeadlineExceeded"}
		p.Annotations[sandbox.AnnotationTTL] = "2h0m0s"
	})
	idle := finishedPod("idle", func(p *corev1.Pod) {
		p.Status = corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{Name: sandbox.ContainerName,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", Message: sandbox.IdleMessagePrefix + " no process but PID 1 ran for 60s"}}}}}
		p.Annotations[sandbox.AnnotationIdleTimeout] = "1m0s"
	})
	exited := finishedPod("exited", func(p *corev1.Pod) {
		p.Status = corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: sandbox.ContainerName,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}}
	})
	running := finishedPod("running", func(p *corev1.Pod) { p.Status = runningStatus() })
	impostor := finishedPod("impostor", func(p *corev1.Pod) {
		p.Name = "someone-elses"
		p.Status.Phase = corev1.PodFailed
	})
	controlled := finishedPod("controlled", func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "j", UID: "j", Controller: ptr.To(true)}}
		p.Status.Phase = corev1.PodSucceeded
	})
	orphanMember := finishedPod("x", func(p *corev1.Pod) {
		p.Name = sandbox.PoolMemberPrefix("gone") + "abcde"
		delete(p.Labels, sandbox.LabelSandbox)
		p.Labels[sandbox.LabelPool] = "gone"
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "PodTemplate", Name: PoolTemplateName("gone"), UID: "old-pool"}}
		p.Status = runningStatus()
	})
	secret := func(name string, owner *metav1.OwnerReference, managed bool) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: k8stypes.UID("uid-secret-" + name)}}
		if managed {
			s.Labels = map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy}
		}
		if owner != nil {
			s.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		return s
	}
	orphan := secret("orphan-env", &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: "agentkernel-gone", UID: "gone"}, true)
	replaced := secret("replaced-env", &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: running.Name, UID: "an-older-pod"}, true)
	owned := secret("owned-env", &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: running.Name, UID: running.UID}, true)
	ownerless := secret("ownerless-env", nil, true)
	foreign := secret("foreign-env", &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: "agentkernel-gone", UID: "gone"}, false)
	objs := []runtime.Object{expired, idle, exited, running, impostor, controlled, orphanMember, orphan, replaced, owned, ownerless, foreign}
	cs, _ := poolCluster(t, objs...)

	garbage, err := FindGarbage(context.Background(), cs, "ns")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, g := range garbage {
		got[g.Kind+"/"+g.Name] = g.Why
	}
	want := map[string]string{
		"sandbox/expired":                  "expired: its TTL (2h0m0s) ran out",
		"sandbox/idle":                     "idle: it stopped itself after 1m0s with nothing running",
		"sandbox/exited":                   "finished: OOMKilled",
		"pool-member/" + orphanMember.Name: `a warm member of pool "gone", which no longer exists`,
		"secret/orphan-env":                "its sandbox's Pod is gone",
		"secret/replaced-env":              "its sandbox's Pod is gone",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("gc would delete %s (%s), which it must not", k, got[k])
		}
	}
	for _, g := range garbage {
		if err := g.Delete(context.Background(), cs); err != nil {
			t.Fatalf("deleting %s/%s: %v", g.Kind, g.Name, err)
		}
	}
	left := map[string]bool{}
	for _, p := range podsIn(t, cs, "ns") {
		left[p.Name] = true
	}
	secrets, _ := cs.CoreV1().Secrets("ns").List(context.Background(), metav1.ListOptions{})
	for _, s := range secrets.Items {
		left[s.Name] = true
	}
	for _, keep := range []string{running.Name, impostor.Name, controlled.Name, "owned-env", "ownerless-env", "foreign-env"} {
		if !left[keep] {
			t.Errorf("gc deleted %s", keep)
		}
	}
	for _, gone := range []string{expired.Name, idle.Name, exited.Name, orphanMember.Name, "orphan-env", "replaced-env"} {
		if left[gone] {
			t.Errorf("gc left %s", gone)
		}
	}
	if again, _ := FindGarbage(context.Background(), cs, "ns"); len(again) != 0 {
		t.Fatalf("garbage after gc: %v", again)
	}
}

// A finished member of a live pool is garbage too; a running one is not.
func TestGCFinishedPoolMember(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 2, nil)
	pods := podsIn(t, cs, "ns")
	dead := pods[0]
	dead.Status.Phase = corev1.PodFailed
	dead.ResourceVersion = ""
	if err := tr.Update(corev1.SchemeGroupVersion.WithResource("pods"), &dead, "ns"); err != nil {
		t.Fatal(err)
	}
	garbage, err := FindGarbage(context.Background(), cs, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(garbage) != 1 || garbage[0].Name != dead.Name || !strings.Contains(garbage[0].Why, "that ended") {
		t.Fatalf("garbage %+v", garbage)
	}
	if !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Name == dead.Name }) {
		t.Fatal("test setup")
	}
}
