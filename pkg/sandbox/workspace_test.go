package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
)

func persistentSpec(name string) Spec {
	s := NewSpec(name, "ns")
	s.Workspace = &Workspace{Size: resource.MustParse("1Gi"), StorageClass: "fast", Retain: time.Hour}
	s.Env = []corev1.EnvVar{{Name: "A", Value: "1"}}
	s.SecretEnvNames = []string{"API_KEY"}
	return s
}

func getWorkspace(t *testing.T, cs kubernetes.Interface, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), WorkspaceName(name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pvc
}

// The workspace is the root: the Pod and the Secret are owned by it, the
// NetworkPolicy by the Pod; /workspace and $HOME are its subPaths; the
// record it carries reads back as the Spec that made it.
func TestPersistentCreateOwnership(t *testing.T) {
	cs := fakecluster.New()
	s := persistentSpec("keep")
	created, err := Create(context.Background(), cs, &s, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	pvc := getWorkspace(t, cs, "keep")
	if created.Workspace == nil || created.Workspace.UID != pvc.UID {
		t.Fatalf("Created.Workspace = %v, want the claim %s", created.Workspace, pvc.UID)
	}
	if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != "1Gi" || *pvc.Spec.StorageClassName != "fast" {
		t.Fatalf("claim asks %s of class %v", got.String(), pvc.Spec.StorageClassName)
	}
	if len(pvc.OwnerReferences) != 0 {
		t.Fatalf("the workspace must have no owner (it is the root): %v", pvc.OwnerReferences)
	}
	ownedBy := func(what string, refs []metav1.OwnerReference, kind, uid string) {
		t.Helper()
		for _, r := range refs {
			if r.Kind == kind && string(r.UID) == uid {
				return
			}
		}
		t.Errorf("%s is not owned by %s %s: %v", what, kind, uid, refs)
	}
	ownedBy("the pod", created.Pod.OwnerReferences, "PersistentVolumeClaim", string(pvc.UID))
	ownedBy("the secret", created.Secret.OwnerReferences, "PersistentVolumeClaim", string(pvc.UID))
	ownedBy("the network policy", created.NetworkPolicy.OwnerReferences, "Pod", string(created.Pod.UID))
	if len(created.Secret.OwnerReferences) != 1 {
		t.Errorf("the secret must outlive the pod (owned by the workspace only): %v", created.Secret.OwnerReferences)
	}
	if why := Ours(created.Pod, "keep"); why != nil {
		t.Fatalf("a persistent sandbox's pod is not Ours: %v", why)
	}
	if !IsPersistent(created.Pod) {
		t.Fatal("IsPersistent is false for a pod that mounts its workspace")
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range created.Pod.Spec.Containers[0].VolumeMounts {
		mounts[m.MountPath] = m
	}
	if m := mounts[WorkspaceDir]; m.Name != workspaceVolume || m.SubPath != workspaceSubPath {
		t.Errorf("/workspace is mounted as %+v", m)
	}
	if m := mounts[HomeDir]; m.Name != workspaceVolume || m.SubPath != homeSubPath {
		t.Errorf("$HOME is mounted as %+v", m)
	}
	if v := fakecluster.RestrictedViolations(t, created.Pod); v != "" {
		t.Fatalf("a persistent sandbox's pod violates Pod Security restricted: %s", v)
	}
	back, err := SpecOf(pvc)
	if err != nil {
		t.Fatal(err)
	}
	if back.Name != "keep" || back.Namespace != "ns" || back.Workspace.Retain != time.Hour || back.Env[0].Value != "1" {
		t.Fatalf("the record reads back as %+v", back)
	}
	if strings.Contains(pvc.Annotations[AnnotationRecord], `"v"`) {
		t.Fatalf("the record holds a secret value: %s", pvc.Annotations[AnnotationRecord])
	}
}

// A name held by a suspended sandbox (its workspace, no Pod) is taken for
// a disposable create and for a persistent one, and the failed create
// leaves nothing behind.
func TestSuspendedSandboxHoldsItsName(t *testing.T) {
	cs := fakecluster.New()
	s := persistentSpec("held")
	if _, err := Create(context.Background(), cs, &s, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Suspend(context.Background(), cs, "ns", "held", SuspendOptions{}); err != nil {
		t.Fatal(err)
	}
	before, err := cs.CoreV1().Secrets("ns").Get(context.Background(), SecretName("held"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, persist := range []bool{false, true} {
		again := NewSpec("held", "ns")
		again.SecretEnvNames = []string{"API_KEY"}
		if persist {
			again = persistentSpec("held")
		}
		_, err := Create(context.Background(), cs, &again, CreateOptions{SecretValues: map[string]string{"API_KEY": "x"}})
		var taken *AlreadyExistsError
		if !errors.As(err, &taken) {
			t.Fatalf("persist=%v: create over a suspended sandbox: %v, want AlreadyExistsError", persist, err)
		}
		pods, _ := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
		if len(pods.Items) != 0 {
			t.Fatalf("persist=%v: the refused create left pod %s", persist, pods.Items[0].Name)
		}
		getWorkspace(t, cs, "held") // still there, untouched
		// Its Secret too: a Secret owned by a workspace that exists is no
		// stale leftover to replace.
		if after, err := cs.CoreV1().Secrets("ns").Get(context.Background(), SecretName("held"), metav1.GetOptions{}); err != nil || after.UID != before.UID {
			t.Fatalf("persist=%v: the suspended sandbox's secret was replaced or deleted: %v", persist, err)
		}
	}
}

// Suspend deletes the Pod and stamps the workspace; a second suspend
// changes nothing; resume makes a new Pod from the record (same spec,
// same workspace, Secret not re-made) and clears the stamp.
func TestSuspendThenResume(t *testing.T) {
	ctx := context.Background()
	cs := fakecluster.New()
	s := persistentSpec("cycle")
	created, err := Create(ctx, cs, &s, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	flushed := ""
	sus, err := Suspend(ctx, cs, "ns", "cycle", SuspendOptions{Flush: func(_ context.Context, p *corev1.Pod) error {
		flushed = p.Name
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if sus.Already || sus.Pod == nil || sus.Pod.UID != created.Pod.UID {
		t.Fatalf("suspend: %+v", sus)
	}
	if flushed != "" {
		t.Fatalf("flushed %s, but the pod never ran (the fake cluster runs nothing): flush is for running pods", flushed)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(ctx, PodName("cycle"), metav1.GetOptions{}); err == nil {
		t.Fatal("the pod is still there after suspend")
	}
	pvc := getWorkspace(t, cs, "cycle")
	at, why, ok := SuspendedSince(pvc)
	if !ok || why != SuspendedByUser || time.Since(at) > time.Minute {
		t.Fatalf("stamp: %v %q %v", at, why, ok)
	}
	if _, err := cs.CoreV1().Secrets("ns").Get(ctx, SecretName("cycle"), metav1.GetOptions{}); err != nil {
		t.Fatalf("the secret must survive a suspend: %v", err)
	}
	again, err := Suspend(ctx, cs, "ns", "cycle", SuspendOptions{})
	if err != nil || !again.Already || again.Why != SuspendedByUser {
		t.Fatalf("second suspend: %+v, %v", again, err)
	}

	if _, _, err := Awake(ctx, cs, "ns", "cycle", true, ResumeOptions{}); !errors.As(err, new(*SuspendedError)) {
		t.Fatalf("Awake with noResume: %v, want SuspendedError", err)
	}
	heard := false
	r, err := Resume(ctx, cs, "ns", "cycle", ResumeOptions{Resuming: func(since time.Time, why string) { heard = why == SuspendedByUser && since.Equal(at) }})
	if err != nil {
		t.Fatal(err)
	}
	if !heard || r.Running || r.Pod == nil || r.Pod.UID == created.Pod.UID {
		t.Fatalf("resume: heard=%v %+v", heard, r)
	}
	if r.Pod.Spec.Containers[0].Image != created.Pod.Spec.Containers[0].Image || !IsPersistent(r.Pod) || r.Secret != nil {
		t.Fatalf("the resumed pod differs: %+v (secret re-made: %v)", r.Pod.Spec, r.Secret != nil)
	}
	if _, _, ok := SuspendedSince(getWorkspace(t, cs, "cycle")); ok {
		t.Fatal("the stamp survived the resume")
	}
	// Resuming a running sandbox does nothing.
	r2, err := Resume(ctx, cs, "ns", "cycle", ResumeOptions{})
	if err != nil || !r2.Running || r2.Pod.UID != r.Pod.UID {
		t.Fatalf("resume of a running sandbox: %+v %v", r2, err)
	}
}

// A Pod that ended by itself (idle) is an auto-suspension: Awake resumes
// it, hearing why and when.
func TestAwakeResumesAnIdleEndedSandbox(t *testing.T) {
	ctx := context.Background()
	cs, tracker := fakecluster.NewTracked()
	s := persistentSpec("idle")
	created, err := Create(ctx, cs, &s, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	ended := created.Pod.DeepCopy()
	ended.ResourceVersion = ""
	finishedAt := metav1.NewTime(time.Now().Add(-2 * time.Hour).Truncate(time.Second))
	ended.Status.Phase = corev1.PodSucceeded
	ended.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 0, Message: IdleMessagePrefix + " no process ran", FinishedAt: finishedAt,
	}}}}
	if err := tracker.Update(corev1.SchemeGroupVersion.WithResource("pods"), ended, "ns"); err != nil {
		t.Fatal(err)
	}
	// Play the kubelet: the resumed Pod (a new UID) runs.
	go func() {
		for ctx.Err() == nil {
			p, err := cs.CoreV1().Pods("ns").Get(ctx, PodName("idle"), metav1.GetOptions{})
			if err == nil && p.UID != created.Pod.UID && len(p.Spec.SchedulingGates) == 0 {
				p.ResourceVersion = ""
				p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
				_ = tracker.Update(corev1.SchemeGroupVersion.WithResource("pods"), p, "ns")
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var since time.Time
	var why string
	pod, r, err := Awake(ctx, cs, "ns", "idle", false, ResumeOptions{Timeout: 30 * time.Second, Resuming: func(s time.Time, w string) { since, why = s, w }})
	if err != nil {
		t.Fatal(err)
	}
	if why != SuspendedIdle || !since.Equal(finishedAt.Time) {
		t.Fatalf("resuming heard %q since %v, want idle since %v", why, since, finishedAt.Time)
	}
	if r == nil || r.Running || pod.UID == created.Pod.UID || pod.Status.Phase != corev1.PodRunning {
		t.Fatalf("awake returned %v (resumed %+v), want a new running pod", pod.UID, r)
	}
}

// Delete of a suspended sandbox deletes its workspace; delete of a
// disposable sandbox never asks for workspaces.
func TestDeleteTakesTheWorkspace(t *testing.T) {
	ctx := context.Background()
	cs := fakecluster.New()
	s := persistentSpec("gone")
	if _, err := Create(ctx, cs, &s, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Suspend(ctx, cs, "ns", "gone", SuspendOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := Delete(ctx, cs, "ns", "gone", nil)
	if err != nil || pod != nil {
		t.Fatalf("delete of a suspended sandbox: %v %v", pod, err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(ctx, WorkspaceName("gone"), metav1.GetOptions{}); err == nil {
		t.Fatal("the workspace survived delete")
	}
	if _, err := Delete(ctx, cs, "ns", "gone", nil); !errors.As(err, new(*NotFoundError)) {
		t.Fatalf("second delete: %v, want NotFoundError", err)
	}

	plain := NewSpec("plain", "ns")
	if _, err := Create(ctx, cs, &plain, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs.ClearActions()
	if _, err := Delete(ctx, cs, "ns", "plain", nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range cs.Actions() {
		if a.GetResource().Resource == "persistentvolumeclaims" {
			t.Fatalf("deleting a disposable sandbox touched workspaces: %v", a)
		}
	}
}

// Suspend and resume of a sandbox without a workspace say so.
func TestSuspendNeedsAWorkspace(t *testing.T) {
	ctx := context.Background()
	cs := fakecluster.New()
	plain := NewSpec("plain", "ns")
	if _, err := Create(ctx, cs, &plain, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Suspend(ctx, cs, "ns", "plain", SuspendOptions{}); !errors.As(err, new(*NotPersistentError)) {
		t.Fatalf("suspend: %v, want NotPersistentError", err)
	}
	if _, err := Resume(ctx, cs, "ns", "plain", ResumeOptions{}); !errors.As(err, new(*NotPersistentError)) {
		t.Fatalf("resume: %v, want NotPersistentError", err)
	}
	if _, err := Suspend(ctx, cs, "ns", "nothing", SuspendOptions{}); !errors.As(err, new(*NotFoundError)) {
		t.Fatalf("suspend of nothing: %v, want NotFoundError", err)
	}
}

// gc deletes a workspace suspended longer than its retain, and keeps one
// that is not.
func TestGCTakesRetainedWorkspaces(t *testing.T) {
	ctx := context.Background()
	cs := fakecluster.New()
	for _, name := range []string{"old", "young"} {
		s := persistentSpec(name)
		if _, err := Create(ctx, cs, &s, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := Suspend(ctx, cs, "ns", name, SuspendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	old := getWorkspace(t, cs, "old")
	if _, err := stampSuspended(ctx, cs, old, time.Now().Add(-2*time.Hour), SuspendedIdle); err != nil {
		t.Fatal(err)
	}
	found, err := FindGarbage(ctx, cs, "ns")
	if err != nil {
		t.Fatal(err)
	}
	var garbage []Garbage // the fake cluster has no garbage collector: leave its policies out
	for _, g := range found {
		if g.Kind != "networkpolicy" {
			garbage = append(garbage, g)
		}
	}
	if len(garbage) != 1 || garbage[0].Kind != "workspace" || garbage[0].Name != "old" || !strings.Contains(garbage[0].Why, "retain (1h0m0s)") {
		t.Fatalf("garbage: %+v", garbage)
	}
	if err := garbage[0].Delete(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(ctx, WorkspaceName("old"), metav1.GetOptions{}); err == nil {
		t.Fatal("the retained-out workspace is still there")
	}
	getWorkspace(t, cs, "young")
}

// A record that is not one, or describes an invalid sandbox, is refused
// with the workspace's name, never resumed.
func TestSpecOfRefusesBadRecords(t *testing.T) {
	s := persistentSpec("rec")
	good := s.WorkspaceClaim()
	for what, record := range map[string]string{
		"not json":     "{",
		"version":      `{"version":9,"spec":{}}`,
		"no workspace": `{"version":1,"spec":{"Image":"x","UID":1000}}`,
		"root uid":     strings.Replace(good.Annotations[AnnotationRecord], `"UID":1000`, `"UID":0`, 1),
	} {
		pvc := good.DeepCopy()
		pvc.Annotations[AnnotationRecord] = record
		if _, err := SpecOf(pvc); err == nil || !strings.Contains(err.Error(), WorkspaceName("rec")) {
			t.Errorf("%s: SpecOf = %v, want an error naming the workspace", what, err)
		}
	}
}

// A sandbox the scheduler holds back for its unbound workspace is told
// so, with the field that fixes it; one no node fits is told otherwise.
func TestUnboundWorkspaceAdvice(t *testing.T) {
	plain := func(f string) string { return f }
	unbound := &StartError{Name: "x", Namespace: "ns", Reason: "Unschedulable", Message: "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."}
	if hint := unbound.Hint(plain); !strings.Contains(hint, "workspace did not bind") || !strings.Contains(hint, "name a storageClass") {
		t.Fatalf("unbound workspace: %q", hint)
	}
	full := &StartError{Name: "x", Namespace: "ns", Reason: "Unschedulable", Message: "0/1 nodes are available: 1 Insufficient cpu."}
	if hint := full.Hint(plain); !strings.Contains(hint, "no node fits") {
		t.Fatalf("no node fits: %q", hint)
	}
}

// A sandbox whose workspace never binds waits (the scheduler retries once
// the claim binds), and when the wait ends it says why, with the advice
// for its workspace — not a generic timeout.
func TestWaitForAWorkspaceThatNeverBinds(t *testing.T) {
	s := persistentSpec("unbound")
	pod := s.Pod()
	pod.UID = "u1"
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available"}}
	cs := fakecluster.New(pod)
	_, err := WaitForRunning(context.Background(), cs, pod, 300*time.Millisecond, nil)
	var start *StartError
	if !errors.As(err, &start) || !strings.Contains(start.Hint(func(f string) string { return f }), "workspace did not bind") {
		t.Fatalf("WaitForRunning = %v, want a StartError advising on the workspace", err)
	}
}

// Created.Delete undoes a persistent create whole (a create whose agent
// would not install, a fill that failed): the workspace it made goes too.
// One that a resume found stays: it is the sandbox's.
func TestCreatedDeleteTakesTheWorkspaceItMade(t *testing.T) {
	ctx := context.Background()
	cs := fakecluster.New()
	s := persistentSpec("undone")
	created, err := Create(ctx, cs, &s, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := created.Delete(ctx, cs, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(ctx, WorkspaceName("undone"), metav1.GetOptions{}); err == nil {
		t.Fatal("the workspace the create made survived its undoing")
	}

	kept := persistentSpec("kept")
	if _, err := Create(ctx, cs, &kept, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Suspend(ctx, cs, "ns", "kept", SuspendOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := Resume(ctx, cs, "ns", "kept", ResumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Delete(ctx, cs, time.Second); err != nil {
		t.Fatal(err)
	}
	getWorkspace(t, cs, "kept")
}

func TestDescribeSuspension(t *testing.T) {
	now := time.Now()
	for want, c := range map[string]struct {
		since time.Time
		why   string
	}{
		"suspended 5h ago (idle)": {now.Add(-5*time.Hour - time.Second), SuspendedIdle},
		"suspended 5m ago":        {now.Add(-5 * time.Minute), SuspendedByUser},
		"suspended (ttl)":         {time.Time{}, SuspendedTTL},
	} {
		if got := DescribeSuspension(c.since, c.why, now); got != want {
			t.Errorf("DescribeSuspension = %q, want %q", got, want)
		}
	}
}
