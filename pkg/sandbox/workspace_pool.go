package sandbox

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// A sandbox claimed from a persistent pool keeps the workspace its member
// was made with, and claims cannot be renamed: that workspace is named as
// the member was (PoolMemberPrefix(pool)+suffix), not WorkspaceName(name),
// and holds the sandbox's name by its agentkernel/sandbox label, as a
// claimed Pod does. So a workspace is found as a Pod is (Find): one GET of
// WorkspaceName(name), then a LIST by label; OursWorkspace accepts either
// name, and two workspaces holding one name are an error, never a guess.

// claimName is the name of the workspace's PersistentVolumeClaim.
func (w *Workspace) claimName(sandbox string) string {
	if w.ClaimName != "" {
		return w.ClaimName
	}
	return WorkspaceName(sandbox)
}

// workspaceNamedFor reports whether a workspace's name is one this plugin
// gives the workspace of the sandbox called name (see Ours for Pods).
func workspaceNamedFor(pvc *corev1.PersistentVolumeClaim, name string) bool {
	if pvc.Name == WorkspaceName(name) {
		return true
	}
	pool := pvc.Labels[LabelPool]
	return pool != "" && pool != PoolActive && strings.HasPrefix(pvc.Name, PoolMemberPrefix(pool))
}

// workspaceOf reads the workspace of the sandbox called name, ours or
// not (the caller asks OursWorkspace): WorkspaceName(name) if it exists,
// else the one workspace of ours claimed from a pool that holds the name.
// None is the API server's NotFound error for WorkspaceName(name).
func workspaceOf(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	pvc, err := cs.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, WorkspaceName(name), metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		return pvc, err
	}
	claimed, lerr := claimedWorkspaces(ctx, cs, namespace, name, "")
	switch {
	case lerr != nil:
		return nil, lerr
	case len(claimed) == 1:
		return claimed[0], nil
	case len(claimed) > 1:
		return nil, fmt.Errorf("%d workspaces claim to be sandbox %q's in namespace %q (persistentvolumeclaim/%s, persistentvolumeclaim/%s); delete the extra one with: kubectl delete pvc -n %s %s",
			len(claimed), name, namespace, claimed[0].Name, claimed[1].Name, namespace, claimed[1].Name)
	}
	return nil, err
}

// claimedWorkspaces are the workspaces of ours, named for a pool member,
// that hold the sandbox name (but the one called except).
func claimedWorkspaces(ctx context.Context, cs kubernetes.Interface, namespace, name, except string) ([]*corev1.PersistentVolumeClaim, error) {
	list, err := cs.CoreV1().PersistentVolumeClaims(namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(map[string]string{LabelManagedBy: ManagedBy, LabelSandbox: name}).String(),
	})
	if apierrors.IsForbidden(err) {
		return nil, nil // who may not list workspaces cannot have made one
	}
	if err != nil {
		return nil, err
	}
	var out []*corev1.PersistentVolumeClaim
	for i := range list.Items {
		pvc := &list.Items[i]
		if pvc.Name != WorkspaceName(name) && pvc.Name != except && OursWorkspace(pvc, name) == nil {
			out = append(out, pvc)
		}
	}
	return out, nil
}

// WorkspaceHeldElsewhere reports an AlreadyExistsError when a workspace of
// ours other than mine holds the sandbox name: a claim from a persistent
// pool checks it once its workspace carries the name, as a cold create
// checks Pods (NameHeldElsewhere); of two that see each other both back
// off, and never both stay.
func WorkspaceHeldElsewhere(ctx context.Context, cs kubernetes.Interface, spec *Spec, mine string) error {
	if got, err := cs.CoreV1().PersistentVolumeClaims(spec.Namespace).Get(ctx, WorkspaceName(spec.Name), metav1.GetOptions{}); err == nil {
		if got.Name != mine && OursWorkspace(got, spec.Name) == nil && got.DeletionTimestamp == nil {
			return &AlreadyExistsError{Name: spec.Name, Namespace: spec.Namespace}
		}
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	others, err := claimedWorkspaces(ctx, cs, spec.Namespace, spec.Name, mine)
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.DeletionTimestamp == nil {
			return &AlreadyExistsError{Name: spec.Name, Namespace: spec.Namespace}
		}
	}
	return nil
}

// A warm member's workspace is made after its Pod, owned by it (not as its
// controller), so that whatever removes the member — a scale down, a
// pool's delete, kubectl delete pod — removes its workspace after it, and
// never while the Pod uses it. A claim turns the ownership round
// (pkg/pool): the workspace becomes the sandbox's root, as create
// --persist makes it.

// memberWorkspace makes the workspace of a warm member whose Pod is pod.
func (c *Created) memberWorkspace(ctx context.Context, cs kubernetes.Interface, spec *Spec, pod *corev1.Pod, dryRun []string) error {
	claim := spec.WorkspaceClaim()
	claim.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}
	got, err := cs.CoreV1().PersistentVolumeClaims(spec.Namespace).Create(ctx, claim, metav1.CreateOptions{DryRun: dryRun})
	if err != nil {
		return fmt.Errorf("creating the pool member's workspace (a PersistentVolumeClaim): %w", err)
	}
	if len(dryRun) == 0 {
		c.Workspace, c.madeWorkspace = got, true
	}
	return nil
}

// MountedWorkspace is the name of the workspace a persistent sandbox's Pod
// mounts ("" for a disposable one): WorkspaceName(name), or its member's
// name for a sandbox claimed from a persistent pool.
func MountedWorkspace(pod *corev1.Pod) string {
	for _, v := range pod.Spec.Volumes {
		if c := v.PersistentVolumeClaim; c != nil && v.Name == workspaceVolume {
			return c.ClaimName
		}
	}
	return ""
}
