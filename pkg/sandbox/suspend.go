package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"
)

// SuspendOptions are the choices of Suspend.
type SuspendOptions struct {
	// Flush runs in the running sandbox before its Pod is deleted (`sync`,
	// through the caller's exec): every write a command saw acknowledged
	// is then on the volume, whatever the volume's driver does on unmount.
	Flush func(ctx context.Context, pod *corev1.Pod) error
	// Timeout bounds the wait until the Pod is gone (0: no bound).
	Timeout time.Duration
}

// Suspension is what Suspend found and did.
type Suspension struct {
	Workspace *corev1.PersistentVolumeClaim
	// Pod is the incarnation Suspend ended; nil when there was none.
	Pod *corev1.Pod
	// Already: the sandbox was suspended before (its Pod gone or ended).
	Already bool
	Since   time.Time
	Why     string
}

// Why a sandbox was suspended (AnnotationSuspendedWhy).
const (
	SuspendedByUser = "suspended"
	SuspendedIdle   = "idle"
	SuspendedTTL    = "ttl"
)

// Suspend ends a persistent sandbox's Pod and keeps everything else: the
// workspace with its record, and the Secret. It flushes first, deletes the
// Pod by UID and waits until it is gone (its node is then free and its
// volume detached), then stamps the workspace with when and why. Every
// step is idempotent: a second suspend, or one racing another, finds the
// Pod gone and only stamps what is not stamped yet.
func Suspend(ctx context.Context, cs kubernetes.Interface, namespace, name string, o SuspendOptions) (*Suspension, error) {
	pvc, err := FindWorkspace(ctx, cs, namespace, name)
	if err != nil {
		return nil, err
	}
	s := &Suspension{Workspace: pvc}
	pod, err := Find(ctx, cs, namespace, name)
	var notFound *NotFoundError
	switch {
	case errors.As(err, &notFound):
		s.Already = true
	case err != nil:
		return nil, err
	case finished(pod):
		s.Already, s.Pod = true, pod
	case pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning && o.Flush != nil:
		if err := o.Flush(ctx, pod); err != nil {
			return nil, fmt.Errorf("flushing sandbox %q's writes to its workspace before suspending it: %w; nothing was suspended", name, err)
		}
		s.Pod = pod
	default:
		s.Pod = pod
	}
	why := SuspendedByUser
	if s.Already && s.Pod != nil {
		why = suspendedWhy(s.Pod)
	}
	if s.Pod != nil {
		if err := DeletePod(ctx, cs, s.Pod, nil); err != nil && !errors.As(err, &notFound) {
			return nil, err
		}
		if err := WaitForDeleted(ctx, cs, s.Pod, o.Timeout); err != nil {
			return nil, err
		}
	}
	if at, w, ok := SuspendedSince(pvc); ok {
		s.Since, s.Why = at, w
		return s, nil
	}
	s.Since, s.Why = time.Now(), why
	if s.Pod != nil && s.Already {
		s.Since = finishedAt(s.Pod)
	}
	stamped, err := stampSuspended(ctx, cs, pvc, s.Since, s.Why)
	if err != nil {
		return nil, err
	}
	s.Workspace = stamped
	return s, nil
}

// FindWorkspace returns the workspace of the persistent sandbox called
// name. A sandbox without one is a NotPersistentError; no sandbox at all a
// NotFoundError.
func FindWorkspace(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	pvc, err := workspaceOf(ctx, cs, namespace, name)
	if apierrors.IsNotFound(err) {
		if _, ferr := Find(ctx, cs, namespace, name); ferr != nil {
			return nil, ferr
		}
		return nil, &NotPersistentError{Name: name, Namespace: namespace}
	}
	if err != nil {
		return nil, err
	}
	if why := OursWorkspace(pvc, name); why != nil {
		return nil, &NotManagedError{Name: name, Namespace: namespace, PodName: "persistentvolumeclaim/" + pvc.Name, Reason: why.Error()}
	}
	if pvc.DeletionTimestamp != nil {
		return nil, &WorkspaceGoneError{Name: name, Namespace: namespace}
	}
	return pvc, nil
}

// NotPersistentError: the sandbox keeps no work beyond its Pod (it was
// created without a workspace), so it cannot be suspended or resumed.
type NotPersistentError struct{ Name, Namespace string }

func (e *NotPersistentError) Error() string {
	return fmt.Sprintf("sandbox %q in namespace %q has no persistent workspace: its files live and die with its Pod, so it cannot be suspended or resumed", e.Name, e.Namespace)
}

// finished: the Pod ended (TTL, idle, its main process exited): for a
// persistent sandbox, that is a suspension.
func finished(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// suspendedWhy is why a persistent sandbox's Pod ended by itself.
func suspendedWhy(pod *corev1.Pod) string {
	switch {
	case Expired(pod):
		return SuspendedTTL
	case StoppedIdle(pod):
		return SuspendedIdle
	}
	return strings.ToLower(Status(pod))
}

// finishedAt is when the Pod's container ended, or now when it does not say.
func finishedAt(pod *corev1.Pod) time.Time {
	for _, c := range pod.Status.ContainerStatuses {
		if t := c.State.Terminated; t != nil && !t.FinishedAt.IsZero() {
			return t.FinishedAt.Time
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return time.Now()
}

// stampSuspended records when and why on the workspace, testing its UID
// first: a workspace made anew under the name is never stamped by mistake.
func stampSuspended(ctx context.Context, cs kubernetes.Interface, pvc *corev1.PersistentVolumeClaim, at time.Time, why string) (*corev1.PersistentVolumeClaim, error) {
	patch := fmt.Sprintf(`[{"op":"test","path":"/metadata/uid","value":%q},`+
		`{"op":"add","path":"/metadata/annotations/%s","value":%q},`+
		`{"op":"add","path":"/metadata/annotations/%s","value":%q}]`,
		pvc.UID, jsonPointerEscape(AnnotationSuspendedAt), at.UTC().Format(time.RFC3339),
		jsonPointerEscape(AnnotationSuspendedWhy), why)
	return patchWorkspace(ctx, cs, pvc, patch)
}

// unstampSuspended removes the stamp once a resumed Pod runs.
func unstampSuspended(ctx context.Context, cs kubernetes.Interface, pvc *corev1.PersistentVolumeClaim) (*corev1.PersistentVolumeClaim, error) {
	ops := []string{fmt.Sprintf(`{"op":"test","path":"/metadata/uid","value":%q}`, pvc.UID)}
	for _, a := range []string{AnnotationSuspendedAt, AnnotationSuspendedWhy} {
		if _, ok := pvc.Annotations[a]; ok {
			ops = append(ops, fmt.Sprintf(`{"op":"remove","path":"/metadata/annotations/%s"}`, jsonPointerEscape(a)))
		}
	}
	if len(ops) == 1 {
		return pvc, nil
	}
	got, err := patchWorkspace(ctx, cs, pvc, "["+strings.Join(ops, ",")+"]")
	if err != nil {
		// A racing resume may have removed them first: then all is well.
		now, gerr := cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).Get(ctx, pvc.Name, metav1.GetOptions{})
		if gerr == nil && now.UID == pvc.UID {
			if _, _, stamped := SuspendedSince(now); !stamped {
				return now, nil
			}
		}
	}
	return got, err
}

func patchWorkspace(ctx context.Context, cs kubernetes.Interface, pvc *corev1.PersistentVolumeClaim, patch string) (*corev1.PersistentVolumeClaim, error) {
	got, err := cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).Patch(ctx, pvc.Name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("recording on the workspace %q whether its sandbox is suspended: %w", pvc.Name, err)
	}
	return got, nil
}

// jsonPointerEscape escapes a map key for a JSON patch path (RFC 6901).
func jsonPointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// DescribeSuspension says since when and why a sandbox was suspended, for
// every edge alike: "suspended 2h ago (idle)", "suspended (ttl)" when the
// time is not known; a suspend asked for says no why.
func DescribeSuspension(since time.Time, why string, now time.Time) string {
	var b strings.Builder
	b.WriteString("suspended")
	if !since.IsZero() {
		b.WriteString(" " + duration.HumanDuration(now.Sub(since)) + " ago")
	}
	if why != "" && why != SuspendedByUser {
		b.WriteString(" (" + why + ")")
	}
	return b.String()
}
