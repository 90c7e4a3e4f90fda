package sandbox

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// workspace is the claim a persistent sandbox's new Pod mounts: the one a
// resume found, or a new one made before the Pod (the Pod is owned by it,
// so it must exist first). A claim already holding the name is a sandbox
// of that name, perhaps suspended: never reused by a create.
func (c *Created) workspace(ctx context.Context, cs kubernetes.Interface, spec *Spec, o CreateOptions, dryRun []string) (*corev1.PersistentVolumeClaim, error) {
	if o.resume != nil {
		c.Workspace = o.resume
		return o.resume, nil
	}
	claim := spec.WorkspaceClaim()
	if claim == nil || spec.Shape != nil {
		return nil, nil // a warm member's is made after its Pod (memberWorkspace)
	}
	got, err := cs.CoreV1().PersistentVolumeClaims(spec.Namespace).Create(ctx, claim, metav1.CreateOptions{DryRun: dryRun})
	if apierrors.IsAlreadyExists(err) {
		return nil, workspaceTaken(ctx, cs, spec)
	}
	if err != nil {
		return nil, fmt.Errorf("creating the sandbox's workspace (a PersistentVolumeClaim): %w", err)
	}
	if len(dryRun) == 0 {
		c.Workspace, c.madeWorkspace = got, true
	}
	return got, nil
}

// workspaceTaken explains why a workspace's name is taken.
func workspaceTaken(ctx context.Context, cs kubernetes.Interface, spec *Spec) error {
	existing, err := cs.CoreV1().PersistentVolumeClaims(spec.Namespace).Get(ctx, WorkspaceName(spec.Name), metav1.GetOptions{})
	if err == nil {
		if why := OursWorkspace(existing, spec.Name); why != nil {
			return &NotManagedError{Name: spec.Name, Namespace: spec.Namespace, PodName: "persistentvolumeclaim/" + existing.Name, Reason: why.Error()}
		}
	}
	return &AlreadyExistsError{Name: spec.Name, Namespace: spec.Namespace}
}

// workspaceStays checks a sandbox's name against workspaces. A persistent
// sandbox's workspace must still be the one its Pod was made for and not
// being deleted (the last check before the Pod is ungated): a resume
// racing a delete then never starts a Pod on a workspace about to go (the
// kubelet would not start it either, but it would wait for a claim that
// never comes back). A disposable sandbox must not share its name with a
// persistent one that is suspended (its Pod gone, its workspace kept):
// checked before any of its dependents is made, so that the suspended
// sandbox's Secret is never taken for a stale one.
func workspaceStays(ctx context.Context, cs kubernetes.Interface, spec *Spec, mine *corev1.PersistentVolumeClaim) error {
	if spec.Shape != nil {
		return nil // a warm pool member holds no name yet
	}
	var got *corev1.PersistentVolumeClaim
	var err error
	if mine == nil {
		got, err = workspaceOf(ctx, cs, spec.Namespace, spec.Name)
	} else {
		// Mine may be a pool member's, named as it (workspace_pool.go); and
		// a sandbox claimed from a pool may hold the name without a Pod.
		if err := WorkspaceHeldElsewhere(ctx, cs, spec, mine.Name); err != nil {
			return err
		}
		got, err = cs.CoreV1().PersistentVolumeClaims(spec.Namespace).Get(ctx, mine.Name, metav1.GetOptions{})
	}
	switch {
	case mine == nil && (apierrors.IsNotFound(err) || apierrors.IsForbidden(err)):
		// No workspace holds the name, or the user may not read workspaces
		// (and so cannot have made one).
		return nil
	case mine == nil && err == nil:
		if OursWorkspace(got, spec.Name) != nil {
			return nil // not a sandbox's: the name is the Pod's to take
		}
		return &AlreadyExistsError{Name: spec.Name, Namespace: spec.Namespace}
	case mine == nil:
		return err
	case apierrors.IsNotFound(err) || err == nil && (got.UID != mine.UID || got.DeletionTimestamp != nil):
		return &WorkspaceGoneError{Name: spec.Name, Namespace: spec.Namespace}
	}
	return err
}

// NameHeldByWorkspace reports an AlreadyExistsError when a persistent
// sandbox of spec's name is suspended (its workspace holds the name with
// no Pod): a claim of the name backs off, as a cold create does.
func NameHeldByWorkspace(ctx context.Context, cs kubernetes.Interface, spec *Spec) error {
	return workspaceStays(ctx, cs, spec, nil)
}

// WorkspaceGoneError: the workspace of a persistent sandbox was deleted
// (or is being deleted) while its sandbox was being started.
type WorkspaceGoneError struct{ Name, Namespace string }

func (e *WorkspaceGoneError) Error() string {
	return fmt.Sprintf("the workspace of sandbox %q in namespace %q was deleted, or is being deleted; its files are gone with it", e.Name, e.Namespace)
}
