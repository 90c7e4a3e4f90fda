package sandbox

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// podListWatch lists and watches one Pod by name. The client says whether it
// can stream the initial list (the API server can; a fake clientset cannot).
// A list or watch the user may not make ends the wait through refuse: the
// informer under UntilWithSync would retry it quietly until the timeout.
func podListWatch(cs kubernetes.Interface, namespace, podName string, refuse context.CancelCauseFunc) cache.ListerWatcher {
	return podsListWatch(cs, namespace, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", podName).String()}, refuse)
}

// podsListWatch is podListWatch for the Pods that sel's label and field
// selectors choose.
func podsListWatch(cs kubernetes.Interface, namespace string, sel metav1.ListOptions, refuse context.CancelCauseFunc) cache.ListerWatcher {
	check := func(err error) {
		if apierrors.IsForbidden(err) {
			refuse(err)
		}
	}
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, options metav1.ListOptions) (runtime.Object, error) {
			options.LabelSelector, options.FieldSelector = sel.LabelSelector, sel.FieldSelector
			l, err := cs.CoreV1().Pods(namespace).List(ctx, options)
			check(err)
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, options metav1.ListOptions) (watch.Interface, error) {
			options.LabelSelector, options.FieldSelector = sel.LabelSelector, sel.FieldSelector
			w, err := cs.CoreV1().Pods(namespace).Watch(ctx, options)
			check(err)
			return w, err
		},
	}, cs)
}

// refused returns the permission error that ended a wait, if one did.
func refused(ctx context.Context) error {
	if err := context.Cause(ctx); apierrors.IsForbidden(err) {
		return err
	}
	return nil
}

// WaitForDeleted watches until pod (by UID) is gone.
func WaitForDeleted(parent context.Context, cs kubernetes.Interface, pod *corev1.Pod, timeout time.Duration) error {
	ctx, cancel := watchtools.ContextWithOptionalTimeout(parent, timeout)
	defer cancel()
	ctx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	gone := func(store cache.Store) (bool, error) {
		for _, obj := range store.List() {
			if p, ok := obj.(*corev1.Pod); ok && p.UID == pod.UID {
				return false, nil
			}
		}
		return true, nil
	}
	_, err := watchtools.UntilWithSync(ctx, podListWatch(cs, pod.Namespace, pod.Name, refuse), &corev1.Pod{}, gone,
		func(ev watch.Event) (bool, error) {
			p, ok := ev.Object.(*corev1.Pod)
			return ev.Type == watch.Deleted && ok && p.UID == pod.UID, nil
		})
	if err := refused(ctx); err != nil {
		return err
	}
	if IsTimeout(err) {
		return notGone(parent, pod, timeout)
	}
	return err
}

// notGone: pod was deleted, but is still there after timeout — or the
// caller stopped waiting before then (Ctrl-C, a server shutting down),
// which is not the same news.
func notGone(parent context.Context, pod *corev1.Pod, timeout time.Duration) error {
	if parent.Err() != nil {
		return fmt.Errorf("stopped waiting for sandbox %q in namespace %q to be gone (%v); it was deleted and may still be terminating: kubectl get pod %s -n %s",
			NameOf(pod), pod.Namespace, context.Cause(parent), pod.Name, pod.Namespace)
	}
	return fmt.Errorf("sandbox %q in namespace %q was not gone within %s; it may still be terminating: kubectl get pod %s -n %s",
		NameOf(pod), pod.Namespace, timeout, pod.Name, pod.Namespace)
}

// IsTimeout: the deadline passed (UntilWithSync may report it as a closed watch).
func IsTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, watchtools.ErrWatchClosed) || wait.Interrupted(err)
}

// WaitForRunning watches the sandbox's Pod until it can exec. It returns at
// once, with the cluster's reason, when the sandbox cannot start; progress
// (if not nil) hears every new state on the way (Describe).
func WaitForRunning(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, timeout time.Duration, progress func(string)) (*corev1.Pod, error) {
	name := NameOf(pod)
	waitCtx, cancel := watchtools.ContextWithOptionalTimeout(ctx, timeout)
	defer cancel()
	waitCtx, refuse := context.WithCancelCause(waitCtx)
	defer refuse(nil)
	last, lastState := pod, ""
	deleted := &StartError{Name: name, Namespace: pod.Namespace, Reason: "Deleted", Message: "the pod was deleted while it was starting"}
	// Deleted (or replaced) before the watch began: no event would ever come.
	stillThere := func(store cache.Store) (bool, error) {
		for _, obj := range store.List() {
			if p, ok := obj.(*corev1.Pod); ok && p.UID == pod.UID {
				return false, nil
			}
		}
		return false, deleted
	}
	ev, err := watchtools.UntilWithSync(waitCtx, podListWatch(cs, pod.Namespace, pod.Name, refuse), &corev1.Pod{}, stillThere,
		func(ev watch.Event) (bool, error) {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || p.UID != pod.UID {
				return false, nil
			}
			if ev.Type == watch.Deleted {
				return false, deleted
			}
			last = p
			started, err := Started(p, name)
			// Tell only states that are waited out, not the one that fails.
			if state := Describe(p); err == nil && !started && progress != nil && state != lastState {
				lastState = state
				progress(state)
			}
			return started, err
		})
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if err := refused(waitCtx); err != nil {
			return nil, err
		}
		if msg, ok := waitsForWorkspace(last); ok && IsTimeout(err) {
			// Not a slow start: a workspace that never bound, said as such.
			return nil, &StartError{Name: name, Namespace: pod.Namespace, Reason: corev1.PodReasonUnschedulable, Message: msg}
		}
		if IsTimeout(err) {
			return nil, field.WithStep(fmt.Errorf("sandbox %q in namespace %q was not running within %s (status: %s)", name, pod.Namespace, timeout, Describe(last)),
				field.Step{Hint: field.HintWaitSandbox, Name: pod.Name, Namespace: pod.Namespace})
		}
		return nil, err
	}
	return ev.Object.(*corev1.Pod), nil
}

// waitsForWorkspace: the scheduler holds the Pod back only until its
// workspace binds (the claim may bind a moment after the Pod is ungated),
// so it is still starting; msg is the scheduler's word for it.
func waitsForWorkspace(pod *corev1.Pod) (msg string, ok bool) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && unboundClaim(c.Message) {
			return c.Message, true
		}
	}
	return "", false
}

// unboundClaim: the scheduler's message for a Pod held back by a claim
// that is not bound yet, or bound a moment ago to a volume (or made a
// moment ago) that the scheduler's cache has not seen yet: it retries
// once its cache catches up (seen on a loaded CI run, where a provisioner
// bound the claim and the scheduler said `persistentvolume "pvc-…" not found`).
func unboundClaim(schedulerMessage string) bool {
	return strings.Contains(schedulerMessage, "unbound immediate PersistentVolumeClaims") ||
		volumeNotSeenYet.MatchString(schedulerMessage)
}

var volumeNotSeenYet = regexp.MustCompile(`persistentvolume(claim)? "[^"]*" not found`)

// fatalWaiting are container waiting reasons that do not clear by themselves
// in the time a user waits for a sandbox. Image pulls are decided by their
// message (PermanentPullFailure): a registry's 429 or a timeout clears.
var fatalWaiting = map[string]bool{
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"CrashLoopBackOff":           true,
}

// runtimeTimedOut: the kubelet's call to the container runtime ran out of
// its time (--runtime-request-timeout, 2 minutes), and the kubelet tries
// again. Seen creating the first container of a large image whose layers
// the runtime was still unpacking (a 400 MB node:22-bookworm on a slow
// node): the next try found them unpacked.
func runtimeTimedOut(w *corev1.ContainerStateWaiting) bool {
	return w.Reason == "CreateContainerError" && strings.TrimSpace(w.Message) == "context deadline exceeded"
}

// Started reports whether the sandbox is running and ready for exec, or
// returns a StartError when it never will be.
func Started(pod *corev1.Pod, name string) (bool, error) {
	fail := func(reason, msg string) (bool, error) {
		return false, &StartError{Name: name, Namespace: pod.Namespace, Reason: reason, Message: msg}
	}
	if pod.DeletionTimestamp != nil {
		return fail("Terminating", "the pod is being deleted")
	}
	for _, c := range pod.Status.Conditions {
		if _, waits := waitsForWorkspace(pod); !waits && c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return fail(c.Reason, c.Message)
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && (fatalWaiting[w.Reason] && !runtimeTimedOut(w) || isPullFailure(w.Reason) && PermanentPullFailure(w.Message)) {
			return fail(w.Reason, w.Message)
		}
		if t := cs.State.Terminated; t != nil {
			if msg := InstallFailure(pod); msg != "" {
				return fail(ReasonInstallFailed, untrusted.Line(strings.TrimPrefix(msg, InstallFailedPrefix), 600))
			}
			return fail("Exited", fmt.Sprintf("the sandbox's main process exited with code %d (%s) %s", t.ExitCode, t.Reason, strings.TrimSpace(t.Message)))
		}
	}
	switch pod.Status.Phase {
	case corev1.PodFailed, corev1.PodSucceeded:
		return fail(string(pod.Status.Phase), pod.Status.Message)
	case corev1.PodRunning:
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
	}
	return false, nil
}

// Status is a one-word state for a sandbox, in the spirit of kubectl get pods.
func Status(pod *corev1.Pod) string {
	if pod.DeletionTimestamp != nil {
		return "Terminating"
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return w.Reason
		}
		if t := cs.State.Terminated; t != nil {
			if t.Reason != "" {
				return t.Reason
			}
			return fmt.Sprintf("ExitCode:%d", t.ExitCode)
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason != "" {
			return c.Reason
		}
	}
	if pod.Status.Reason != "" {
		return pod.Status.Reason
	}
	if pod.Status.Phase == "" {
		return string(corev1.PodPending)
	}
	return string(pod.Status.Phase)
}

// Describe is Status with the cluster's message, for progress lines and
// timeouts: "ErrImagePull: ... 429 Too Many Requests".
func Describe(pod *corev1.Pod) string {
	status := Status(pod)
	msg := ""
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason == status {
			msg = w.Message
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == status {
			msg = c.Message
		}
	}
	if msg = strings.TrimSpace(msg); msg == "" {
		return status
	}
	return status + ": " + msg
}

func isPullFailure(reason string) bool {
	return reason == "ErrImagePull" || reason == "ImagePullBackOff"
}

// permanentPull are the words registries and runtimes use for pull
// failures that retrying does not fix: a name that does not exist, or
// credentials the registry refuses.
var permanentPull = []string{
	"not found", "manifest unknown", "name unknown", "repository does not exist",
	"unauthorized", "authentication required", "access denied", "pull access denied",
	"denied:", "forbidden", "invalid reference format", "no such host",
}

// transientPull win over permanentPull: a rate-limit message may well
// mention authenticating ("... increase the limit by authenticating").
var transientPull = []string{
	"429", "too many requests", "toomanyrequests", "rate limit", "timeout", "timed out",
	"temporarily", "connection reset", "connection refused", "503", "502", "504", "service unavailable",
}

// PermanentPullFailure reports whether an image pull failure message means
// the pull will never succeed. Anything else (429 Too Many Requests, a
// timeout, a reset connection, a 5xx) is worth waiting out: the kubelet
// retries, and the progress line shows the reason meanwhile.
func PermanentPullFailure(message string) bool {
	m := strings.ToLower(message)
	for _, word := range transientPull {
		if strings.Contains(m, word) {
			return false
		}
	}
	for _, word := range permanentPull {
		if strings.Contains(m, word) {
			return true
		}
	}
	return false
}
