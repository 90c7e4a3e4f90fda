package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A persistent pool (pool create with a workspace in its definition) gives
// each warm member its own workspace, a PersistentVolumeClaim named as the
// member, made right after the member's gated Pod and owned by it: it is
// provisioned and bound while the member waits, and whatever removes the
// member (scale down, pool delete, kubectl delete pod) removes it after the
// Pod, never while the Pod uses it. Claims cannot be renamed, so the
// member's name is chosen before its Pod is made (the Pod mounts the
// workspace by name) and stays the workspace's name for good.
//
// A claim re-roots the workspace: after the claim's one write to the Pod
// (which also makes the Pod owned by the workspace), one write to the
// workspace gives it the sandbox's name label and record and drops its
// owner, so the workspace is the sandbox's root exactly as create
// --persist makes it, and suspend, resume, list, delete and gc find it by
// its agentkernel/sandbox label. Until then the claim is pending
// (claimstate.go): a claimant that dies in between leaves a half-claimed
// sandbox that gc removes, and with its Pod the workspace the Pod owns.

// newMemberName is a fresh name for a persistent pool's member, as the API
// server's generateName would make it.
func newMemberName(pool string) string {
	return sandbox.GeneratedName(strings.TrimSuffix(sandbox.PoolMemberPrefix(pool), "-"))
}

// trustWorkspace returns the workspace of member when it is the one p
// makes for it, or why not: a lookalike claim (made by whoever may create
// PersistentVolumeClaims, perhaps bound to a volume full of their files)
// must never become a sandbox's workspace. It must be ours, of this pool
// and member, owned by the member's Pod (by UID: made after it), shaped as
// the pool's (class, size, access, no data source) and not being deleted.
func trustWorkspace(ctx context.Context, cs kubernetes.Interface, p *Pool, want *sandbox.Spec, member *corev1.Pod) (*corev1.PersistentVolumeClaim, error) {
	refuse := func(format string, args ...any) error {
		return &untrustedMemberError{pool: p.Name, member: member.Name, why: "its workspace " + fmt.Sprintf(format, args...)}
	}
	got, err := cs.CoreV1().PersistentVolumeClaims(member.Namespace).Get(ctx, member.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, refuse("does not exist")
	}
	if err != nil {
		return nil, fmt.Errorf("reading the workspace of pool member %s: %w", member.Name, err)
	}
	w := want.WorkspaceClaim()
	l := got.Labels
	switch {
	case l[sandbox.LabelManagedBy] != sandbox.ManagedBy || l[sandbox.LabelPool] != p.Name || l[LabelFence] != member.Labels[LabelFence]:
		return nil, refuse("has other labels than the pool gives its members'")
	case l[sandbox.LabelSandbox] != "":
		return nil, refuse("was claimed as sandbox %q", l[sandbox.LabelSandbox])
	case len(got.OwnerReferences) != 1 || got.OwnerReferences[0].Kind != "Pod" || got.OwnerReferences[0].UID != member.UID ||
		ptr.Deref(got.OwnerReferences[0].Controller, false):
		return nil, refuse("is not owned by the member's Pod (UID %s) alone", member.UID)
	case got.DeletionTimestamp != nil:
		return nil, refuse("is being deleted")
	case got.Spec.DataSource != nil || got.Spec.DataSourceRef != nil:
		return nil, refuse("was made from a data source; the pool's start empty")
	case !apiequality.Semantic.DeepEqual(got.Spec.AccessModes, w.Spec.AccessModes) ||
		!apiequality.Semantic.DeepEqual(got.Spec.Resources.Requests, w.Spec.Resources.Requests) ||
		w.Spec.StorageClassName != nil && !ptrEqual(w.Spec.StorageClassName, got.Spec.StorageClassName):
		return nil, refuse("has another size, class or access mode than the pool's")
	}
	return got, nil
}

// claimedWorkspaceOwner is the ownerReference a claim gives the member's
// Pod: from the claim on, the Pod belongs to the workspace, as a
// persistent sandbox's Pods do.
func claimedWorkspaceOwner(w *corev1.PersistentVolumeClaim) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "PersistentVolumeClaim", Name: w.Name, UID: w.UID}}
}

// rerootWorkspace makes the claimed member's workspace the root of the
// sandbox s: its name label and record, no owner. The write tests the UID
// and the member's ownership, so a workspace replaced or taken since the
// claim read it is never re-rooted. s must have its ClaimName set.
func rerootWorkspace(ctx context.Context, cs kubernetes.Interface, w *corev1.PersistentVolumeClaim, member *corev1.Pod, s *sandbox.Spec) (*corev1.PersistentVolumeClaim, error) {
	root := s.WorkspaceClaim()
	root.Labels[sandbox.LabelPool] = w.Labels[sandbox.LabelPool] // whence its name (OursWorkspace)
	annotations := map[string]string{}
	for k, v := range w.Annotations {
		annotations[k] = v
	}
	for k, v := range root.Annotations {
		annotations[k] = v
	}
	ops := []map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": w.UID},
		{"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": member.UID},
		{"op": "replace", "path": "/metadata/labels", "value": root.Labels},
		{"op": "replace", "path": "/metadata/annotations", "value": annotations},
		{"op": "remove", "path": "/metadata/ownerReferences"},
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	got, err := cs.CoreV1().PersistentVolumeClaims(w.Namespace).Patch(ctx, w.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("making workspace %q sandbox %q's: %w", w.Name, s.Name, err)
	}
	return got, nil
}

// deleteClaimedWorkspace removes the workspace of a claim that could not
// finish, by UID: once re-rooted it no longer goes with the Pod.
func deleteClaimedWorkspace(ctx context.Context, cs kubernetes.Interface, w *corev1.PersistentVolumeClaim) error {
	cctx, cancel := sandbox.CleanupContext(ctx)
	defer cancel()
	err := cs.CoreV1().PersistentVolumeClaims(w.Namespace).Delete(cctx, w.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: ptr.To(w.UID)},
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("cleaning up failed; left behind in namespace %q: persistentvolumeclaim/%s (remove with: kubectl delete pvc -n %s %s): %v",
			w.Namespace, w.Name, w.Namespace, w.Name, err)
	}
	return nil
}

// adoptWorkspace re-roots the claimed member's workspace for sandbox s
// (d.workspace is then the re-rooted claim) and backs off when another
// workspace holds the name meanwhile (a cold create --persist, or another
// claim): of two that see each other both back off, never both stay.
func adoptWorkspace(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, s *sandbox.Spec, d *delivery) error {
	rooted, err := rerootWorkspace(ctx, cs, d.workspace, pod, s)
	if err != nil {
		return err
	}
	d.workspace = rooted
	return sandbox.WorkspaceHeldElsewhere(ctx, cs, s, rooted.Name)
}
