package pool

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// persistent makes a pool's (or a claim's) sandboxes persistent.
func persistent(s *sandbox.Spec) {
	s.Workspace = &sandbox.Workspace{Size: resource.MustParse("2Gi"), StorageClass: "fast"}
}

func persistentClaim(name string) *sandbox.Spec {
	s := claimSpec(name)
	s.Workspace = &sandbox.Workspace{Size: resource.MustParse("2Gi")}
	return s
}

func workspacesIn(t *testing.T, cs *fake.Clientset) []corev1.PersistentVolumeClaim {
	t.Helper()
	list, err := cs.CoreV1().PersistentVolumeClaims("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// checkMemberWorkspace fails unless member mounts a workspace named as
// itself, owned by it alone, labelled for the pool and for no sandbox.
func checkMemberWorkspace(t *testing.T, cs *fake.Clientset, member *corev1.Pod) {
	t.Helper()
	claim := ""
	for _, v := range member.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	if claim != member.Name || !strings.HasPrefix(member.Name, sandbox.PoolMemberPrefix("warm")) {
		t.Fatalf("member %s mounts workspace %q, want one named as itself", member.Name, claim)
	}
	w, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), claim, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("member %s's workspace: %v", member.Name, err)
	}
	if len(w.OwnerReferences) != 1 || w.OwnerReferences[0].UID != member.UID || ptr.Deref(w.OwnerReferences[0].Controller, false) {
		t.Fatalf("member %s's workspace must be owned by its Pod alone (so it goes with it): %v", member.Name, w.OwnerReferences)
	}
	if w.Labels[sandbox.LabelPool] != "warm" || w.Labels[sandbox.LabelSandbox] != "" || w.Labels[LabelFence] != member.Labels[LabelFence] {
		t.Fatalf("member %s's workspace labels: %v", member.Name, w.Labels)
	}
	if got := w.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("2Gi")) != 0 || ptr.Deref(w.Spec.StorageClassName, "") != "fast" {
		t.Fatalf("member %s's workspace is %s of class %v, want the pool's 2Gi of fast", member.Name, got.String(), w.Spec.StorageClassName)
	}
}

// Every member of a persistent pool has its own workspace, named as it and
// owned by its Pod, so that whatever deletes the member deletes it after.
func TestPersistentPoolMembersHaveTheirOwnWorkspace(t *testing.T) {
	cs, tr := poolCluster(t)
	p := newTestPool(t, cs, tr, "warm", 3, persistent)
	members := podsIn(t, cs, "ns")
	if len(members) != 3 || len(workspacesIn(t, cs)) != 3 {
		t.Fatalf("%d members, %d workspaces; want 3 and 3", len(members), len(workspacesIn(t, cs)))
	}
	for i := range members {
		checkMemberWorkspace(t, cs, &members[i])
		if err := trustMemberErr(context.Background(), cs, p, &members[i]); err != nil {
			t.Fatalf("the pool does not trust its own member: %v", err)
		}
	}
	// The stored definition reads back persistent; the template shows no
	// member's own workspace.
	got, err := GetPool(context.Background(), cs, "ns", "warm")
	if err != nil || got.Spec.Workspace == nil || got.Spec.Workspace.Size.Cmp(resource.MustParse("2Gi")) != 0 {
		t.Fatalf("GetPool = %+v, %v: want the workspace back", got, err)
	}
	for _, v := range p.PodTemplate().Template.Spec.Volumes {
		if c := v.PersistentVolumeClaim; c != nil && c.ClaimName == members[0].Name {
			t.Fatalf("the PodTemplate names a member's workspace: %s", c.ClaimName)
		}
	}
}

func trustMemberErr(ctx context.Context, cs *fake.Clientset, p *Pool, m *corev1.Pod) error {
	_, err := trustMember(ctx, cs, p, m)
	return err
}

// A claim keeps the member's workspace as the sandbox's root, exactly as
// create --persist makes one: suspend keeps it, resume brings the sandbox
// back as itself (not from the pool) on the same workspace, delete removes
// it; the pool is refilled with a member that has a workspace of its own.
func TestPersistentClaimKeepsTheWorkspaceThroughSuspendAndResume(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 2, persistent)
	ctx := context.Background()
	claim := persistentClaim("task")
	claim.Workspace.Retain = time.Hour // the claim's own
	a, err := Acquire(ctx, cs, claim, AcquireOptions{Pool: "warm"})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Warm {
		t.Fatalf("not claimed warm: %s", a.Why)
	}
	member := a.Pod.Name
	w, err := sandbox.FindWorkspace(ctx, cs, "ns", "task")
	if err != nil {
		t.Fatalf("the claimed sandbox's workspace: %v", err)
	}
	if w.Name != member || len(w.OwnerReferences) != 0 || w.Labels[sandbox.LabelSandbox] != "task" {
		t.Fatalf("workspace %s (owners %v, labels %v): want the member's, owned by nobody, holding the name", w.Name, w.OwnerReferences, w.Labels)
	}
	if len(a.Pod.OwnerReferences) != 1 || a.Pod.OwnerReferences[0].UID != w.UID {
		t.Fatalf("the claimed Pod must be owned by its workspace: %v", a.Pod.OwnerReferences)
	}
	if a.Pod.Annotations[sandbox.AnnotationClaimState] != sandbox.ClaimComplete {
		t.Fatalf("claim state %q: a persistent claim is whole only once its workspace is re-rooted", a.Pod.Annotations[sandbox.AnnotationClaimState])
	}
	rec, err := sandbox.SpecOf(w)
	if err != nil || rec.Name != "task" || rec.Workspace.ClaimName != member || rec.Workspace.Retain != time.Hour || rec.Workspace.StorageClass != "fast" {
		t.Fatalf("the record reads back as %+v, %v", rec, err)
	}
	if !sandbox.IsPersistent(a.Pod) {
		t.Fatal("the claimed sandbox is not persistent")
	}
	// Refilled: two members, each with a workspace of its own.
	var warm []corev1.Pod
	for _, p := range podsIn(t, cs, "ns") {
		if p.Labels[sandbox.LabelSandbox] == "" {
			warm = append(warm, p)
		}
	}
	if len(warm) != 2 {
		t.Fatalf("%d warm members after the claim, want 2", len(warm))
	}
	for i := range warm {
		checkMemberWorkspace(t, cs, &warm[i])
	}

	s, err := sandbox.Suspend(ctx, cs, "ns", "task", sandbox.SuspendOptions{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Pod == nil || s.Pod.UID != a.Pod.UID {
		t.Fatalf("suspend ended %v, want the claimed Pod", s.Pod)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(ctx, member, metav1.GetOptions{}); err != nil {
		t.Fatalf("suspend must keep the workspace: %v", err)
	}
	suspended, err := sandbox.ListSuspended(ctx, cs, "ns", "", nil)
	if err != nil || len(suspended) != 1 || suspended[0].Name() != "task" {
		t.Fatalf("ListSuspended = %v, %v", suspended, err)
	}

	r, err := sandbox.Resume(ctx, cs, "ns", "task", sandbox.ResumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := r.Pod
	if pod.Name != sandbox.PodName("task") || pod.Labels[sandbox.LabelPool] != sandbox.PoolActive {
		t.Fatalf("resumed as %s (pool %q): want the sandbox itself, not a pool member", pod.Name, pod.Labels[sandbox.LabelPool])
	}
	mounts := ""
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			mounts = v.PersistentVolumeClaim.ClaimName
		}
	}
	if mounts != member || len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].UID != w.UID {
		t.Fatalf("resumed Pod mounts %q, owners %v: want workspace %s, owned by it", mounts, pod.OwnerReferences, member)
	}
	if found, err := sandbox.Find(ctx, cs, "ns", "task"); err != nil || found.UID != pod.UID {
		t.Fatalf("Find(task) = %v, %v", found, err)
	}

	if _, err := sandbox.Delete(ctx, cs, "ns", "task", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(ctx, member, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("delete must remove the workspace: %v", err)
	}
}

// A claim's persistence must be its pool's, both ways, and a refused claim
// takes no member and makes nothing.
func TestClaimPersistenceMustMatchThePool(t *testing.T) {
	for name, tc := range map[string]struct {
		pool  func(*sandbox.Spec)
		claim *sandbox.Spec
		want  string
	}{
		"persistent claim, disposable pool": {nil, persistentClaim("task"), "is not persistent"},
		"disposable claim, persistent pool": {persistent, claimSpec("task"), "is persistent"},
	} {
		t.Run(name, func(t *testing.T) {
			cs, tr := poolCluster(t)
			newTestPool(t, cs, tr, "warm", 1, tc.pool)
			before, beforeW := podsIn(t, cs, "ns"), workspacesIn(t, cs)
			_, err := Acquire(context.Background(), cs, tc.claim, AcquireOptions{Pool: "warm"})
			var fe field.Error
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &fe) || fe.Field != "workspaceSize" {
				t.Fatalf("err = %v; want a workspaceSize error saying the pool %s", err, tc.want)
			}
			after := podsIn(t, cs, "ns")
			if len(after) != len(before) || after[0].ResourceVersion != before[0].ResourceVersion || len(workspacesIn(t, cs)) != len(beforeW) {
				t.Fatalf("a refused claim changed the namespace: %d pods (was %d), %d workspaces (was %d)", len(after), len(before), len(workspacesIn(t, cs)), len(beforeW))
			}
		})
	}
}

// A claim that insists on a size or class (the claim names it) gets it
// from a pool of that size and class, or is refused.
func TestPersistentClaimInsistsOnSizeAndClass(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, persistent)
	claim := persistentClaim("task")
	claim.Workspace.Size = resource.MustParse("50Gi")
	_, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "warm", Match: []string{"workspaceSize"}})
	if err == nil || !strings.Contains(err.Error(), "workspaceSize: the pool has 2Gi, the claim asks for 50Gi") {
		t.Fatalf("err = %v", err)
	}
	claim = persistentClaim("task")
	claim.Workspace.StorageClass = "slow"
	_, err = Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "warm", Match: []string{"storageClass"}})
	if err == nil || !strings.Contains(err.Error(), "storageClass: the pool has \"fast\", the claim asks for \"slow\"") {
		t.Fatalf("err = %v", err)
	}
}

// A lookalike workspace (made by whoever may create claims: perhaps bound
// to a volume full of their files) never receives a claim: the member is
// not trusted, and the claim creates the sandbox cold instead.
func TestClaimRefusesAMemberWithALookalikeWorkspace(t *testing.T) {
	for name, mutate := range map[string]func(w *corev1.PersistentVolumeClaim){
		"not owned by the member": func(w *corev1.PersistentVolumeClaim) { w.OwnerReferences[0].UID = "someone-else" },
		"no owner":                func(w *corev1.PersistentVolumeClaim) { w.OwnerReferences = nil },
		"another class":           func(w *corev1.PersistentVolumeClaim) { w.Spec.StorageClassName = ptr.To("theirs") },
		"another size": func(w *corev1.PersistentVolumeClaim) {
			w.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("1Ti")
		},
		"from a data source": func(w *corev1.PersistentVolumeClaim) {
			w.Spec.DataSource = &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "theirs"}
		},
		"being deleted": func(w *corev1.PersistentVolumeClaim) {
			w.DeletionTimestamp, w.Finalizers = &metav1.Time{Time: time.Now()}, []string{"kubernetes.io/pvc-protection"}
		},
		"another pool's":       func(w *corev1.PersistentVolumeClaim) { w.Labels[sandbox.LabelPool] = "other" },
		"claimed already":      func(w *corev1.PersistentVolumeClaim) { w.Labels[sandbox.LabelSandbox] = "x" },
		"missing":              nil,
		"a controller owns it": func(w *corev1.PersistentVolumeClaim) { w.OwnerReferences[0].Controller = ptr.To(true) },
	} {
		t.Run(name, func(t *testing.T) {
			cs, tr := poolCluster(t)
			newTestPool(t, cs, tr, "warm", 1, persistent)
			ctx := context.Background()
			member := podsIn(t, cs, "ns")[0]
			w, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(ctx, member.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := cs.CoreV1().PersistentVolumeClaims("ns").Delete(ctx, w.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if mutate != nil {
				lookalike := w.DeepCopy()
				lookalike.UID, lookalike.ResourceVersion = "lookalike", ""
				mutate(lookalike)
				if err := tr.Add(lookalike); err != nil {
					t.Fatal(err)
				}
			}
			a, err := Acquire(ctx, cs, persistentClaim("task"), AcquireOptions{Pool: "warm"})
			if err != nil {
				t.Fatal(err)
			}
			if a.Warm || a.Pod.UID == member.UID {
				t.Fatal("the member with a lookalike workspace was claimed")
			}
			got, err := cs.CoreV1().Pods("ns").Get(ctx, member.Name, metav1.GetOptions{})
			if err != nil || got.Labels[sandbox.LabelSandbox] != "" {
				t.Fatalf("the untrusted member was changed: %v, %v", got, err)
			}
			if mutate != nil {
				if got, _ := cs.CoreV1().PersistentVolumeClaims("ns").Get(ctx, member.Name, metav1.GetOptions{}); got.Annotations[sandbox.AnnotationRecord] != w.Annotations[sandbox.AnnotationRecord] || len(got.OwnerReferences) != len(mustOwners(mutate, w)) {
					t.Fatalf("the lookalike workspace was written: %v", got)
				}
			}
			// The cold sandbox has a workspace of its own name.
			if cold, err := sandbox.FindWorkspace(ctx, cs, "ns", "task"); err != nil || cold.Name != sandbox.WorkspaceName("task") {
				t.Fatalf("the cold sandbox's workspace: %v, %v", cold, err)
			}
		})
	}
}

func mustOwners(mutate func(*corev1.PersistentVolumeClaim), w *corev1.PersistentVolumeClaim) []metav1.OwnerReference {
	c := w.DeepCopy()
	mutate(c)
	return c.OwnerReferences
}

// A persistent claim whose delivery fails leaves nothing: not the Pod, not
// the workspace it had already made the sandbox's.
func TestPersistentClaimWhoseDeliveryFailsLeavesNoWorkspace(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, persistent)
	member := podsIn(t, cs, "ns")[0]
	rec := &execRecorder{err: errors.New("exec refused")}
	claim := persistentClaim("task")
	claim.Env = []corev1.EnvVar{{Name: "A", Value: "1"}}
	_, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "warm", Exec: rec.execFor(t)})
	if err == nil || !strings.Contains(err.Error(), "exec refused") {
		t.Fatalf("err = %v", err)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(context.Background(), member.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the claimed Pod is left: %v", err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), member.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the re-rooted workspace is left: %v", err)
	}
	if _, err := sandbox.FindWorkspace(context.Background(), cs, "ns", "task"); err == nil {
		t.Fatal("a failed claim left a sandbox that suspend/resume would find")
	}
}

// A persistent claim's Secret belongs to the sandbox (its workspace) and
// has the sandbox's name, so a resumed Pod reads it.
func TestPersistentClaimSecretOutlivesThePod(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, persistent)
	rec := &execRecorder{}
	claim := persistentClaim("task")
	claim.SecretEnvNames = []string{"API_KEY"}
	a, err := Acquire(context.Background(), cs, claim, AcquireOptions{Pool: "warm", Exec: rec.execFor(t),
		CreateOptions: sandbox.CreateOptions{SecretValues: map[string]string{"API_KEY": "s3cret"}}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Secret == nil || a.Secret.Name != sandbox.SecretName("task") || len(a.Secret.OwnerReferences) != 1 || a.Secret.OwnerReferences[0].Kind != "PersistentVolumeClaim" {
		t.Fatalf("secret %v: want %s owned by the workspace", a.Secret, sandbox.SecretName("task"))
	}
}

// Two workspaces holding one sandbox name are an error, never a guess.
func TestTwoClaimedWorkspacesOfOneNameAreAnError(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "warm", 1, persistent)
	ctx := context.Background()
	a, err := Acquire(ctx, cs, persistentClaim("task"), AcquireOptions{Pool: "warm"})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := cs.CoreV1().PersistentVolumeClaims("ns").Get(ctx, a.Pod.Name, metav1.GetOptions{})
	twin := w.DeepCopy()
	twin.Name, twin.UID, twin.ResourceVersion = sandbox.PoolMemberPrefix("warm")+"twin1", "twin", ""
	if err := tr.Add(twin); err != nil {
		t.Fatal(err)
	}
	if _, err := sandbox.FindWorkspace(ctx, cs, "ns", "task"); err == nil || !strings.Contains(err.Error(), "2 workspaces claim to be sandbox \"task\"") {
		t.Fatalf("err = %v", err)
	}
}
