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
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"
)

// RestrictedNamespaceLabels are put on a namespace made by --create-namespace.
// The Pod Security marker belongs on the namespace: on a Pod it means nothing.
func RestrictedNamespaceLabels() map[string]string {
	return map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/warn":            "restricted",
		"pod-security.kubernetes.io/audit":           "restricted",
	}
}

// cleanupTimeout bounds the removal of a half-made sandbox; it runs on a
// context of its own because the caller's may already be cancelled (Ctrl-C).
const cleanupTimeout = 30 * time.Second

// CreateOptions are the choices of `create` beyond the Spec.
type CreateOptions struct {
	// SecretValues holds the values of Spec.SecretEnvNames.
	SecretValues map[string]string
	// ServerDryRun sends every object with dryRun=All: admission runs, nothing is stored.
	ServerDryRun    bool
	CreateNamespace bool
	// Wait until the sandbox can exec, failing fast with the cluster's reason.
	Wait    bool
	Timeout time.Duration
}

// Created is what Create made.
type Created struct {
	Namespace     *corev1.Namespace // nil unless Create made it
	Secret        *corev1.Secret
	NetworkPolicy *metav1.ObjectMeta
	Pod           *corev1.Pod
}

// Create makes the sandbox: namespace (if asked), Secret and NetworkPolicy
// first, then the Pod, then hands the first two to the Pod as owner so the
// garbage collector removes them with it. If anything fails — including the
// wait, or ctx being cancelled — everything made so far is removed again.
func Create(ctx context.Context, cs kubernetes.Interface, spec *Spec, o CreateOptions) (_ *Created, err error) {
	var dryRun []string
	if o.ServerDryRun {
		dryRun = []string{metav1.DryRunAll}
	}
	created := &Created{}
	defer func() {
		if err != nil && !o.ServerDryRun {
			cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if cerr := created.remove(cleanupCtx, cs); cerr != nil {
				err = fmt.Errorf("%w; cleaning up also failed: %v (remove leftovers with: kubectl agentkernel delete %s -n %s)", err, cerr, spec.Name, spec.Namespace)
			}
		}
	}()

	if o.CreateNamespace {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: spec.Namespace, Labels: RestrictedNamespaceLabels()}}
		got, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{DryRun: dryRun})
		switch {
		case err == nil:
			if !o.ServerDryRun {
				created.Namespace = got
			}
		case apierrors.IsAlreadyExists(err):
			// An existing namespace is the admin's: use it as it is.
		default:
			return created, fmt.Errorf("creating namespace %q: %w", spec.Namespace, err)
		}
	}

	podName := PodName(spec.Name)
	if existing, err := cs.CoreV1().Pods(spec.Namespace).Get(ctx, podName, metav1.GetOptions{}); err == nil {
		if !IsManaged(existing) {
			return created, &NotManagedError{Name: spec.Name, Namespace: spec.Namespace, PodName: podName}
		}
		return created, &AlreadyExistsError{Name: spec.Name, Namespace: spec.Namespace}
	} else if !apierrors.IsNotFound(err) {
		return created, err
	}

	if !o.ServerDryRun {
		if err := removeStale(ctx, cs, spec); err != nil {
			return created, err
		}
	}
	if secret := spec.Secret(o.SecretValues); secret != nil {
		got, err := cs.CoreV1().Secrets(spec.Namespace).Create(ctx, secret, metav1.CreateOptions{DryRun: dryRun})
		if err != nil {
			return created, fmt.Errorf("creating the sandbox's secret: %w", err)
		}
		created.Secret = got
	}
	if np := spec.NetworkPolicy(); np != nil {
		got, err := cs.NetworkingV1().NetworkPolicies(spec.Namespace).Create(ctx, np, metav1.CreateOptions{DryRun: dryRun})
		if err != nil {
			return created, fmt.Errorf("creating the sandbox's NetworkPolicy (it must exist before the Pod): %w", err)
		}
		created.NetworkPolicy = &got.ObjectMeta
	}
	pod, err := cs.CoreV1().Pods(spec.Namespace).Create(ctx, spec.Pod(), metav1.CreateOptions{DryRun: dryRun})
	if err != nil {
		return created, fmt.Errorf("creating the sandbox's pod: %w", err)
	}
	created.Pod = pod
	if o.ServerDryRun {
		return created, nil
	}
	if err := created.adopt(ctx, cs); err != nil {
		return created, err
	}
	if o.Wait {
		running, err := WaitForRunning(ctx, cs, spec.Namespace, spec.Name, o.Timeout)
		if err != nil {
			return created, err
		}
		created.Pod = running
	}
	return created, nil
}

// removeStale deletes a previous sandbox's NetworkPolicy and Secret of the
// same name. With no Pod of that name they are stale by definition: the
// garbage collector has not caught up with a just-deleted sandbox, or the
// plugin died before making the Pod. Objects of the same name that this
// plugin did not create are left alone, and reported.
func removeStale(ctx context.Context, cs kubernetes.Interface, spec *Spec) error {
	np, err := cs.NetworkingV1().NetworkPolicies(spec.Namespace).Get(ctx, PodName(spec.Name), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case !IsManaged(np):
		return fmt.Errorf("NetworkPolicy %q in namespace %q exists and was not made by kubectl agentkernel; remove it or pick another sandbox name", np.Name, spec.Namespace)
	default:
		err := cs.NetworkingV1().NetworkPolicies(spec.Namespace).Delete(ctx, np.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(np.UID)}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("removing the stale NetworkPolicy of a previous sandbox %q: %w", spec.Name, err)
		}
	}
	secret, err := cs.CoreV1().Secrets(spec.Namespace).Get(ctx, SecretName(spec.Name), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case !IsManaged(secret):
		return fmt.Errorf("secret %q in namespace %q exists and was not made by kubectl agentkernel; remove it or pick another sandbox name", secret.Name, spec.Namespace)
	default:
		err := cs.CoreV1().Secrets(spec.Namespace).Delete(ctx, secret.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(secret.UID)}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("removing the stale secret of a previous sandbox %q: %w", spec.Name, err)
		}
	}
	return nil
}

// adopt makes the Pod the owner of the Secret and NetworkPolicy. They had to
// exist before the Pod, so they could not name its UID when they were made.
func (c *Created) adopt(ctx context.Context, cs kubernetes.Interface) error {
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":%q,"uid":%q,"controller":true}]}}`,
		c.Pod.Name, c.Pod.UID)
	if c.Secret != nil {
		if _, err := cs.CoreV1().Secrets(c.Secret.Namespace).Patch(ctx, c.Secret.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("linking the secret to its pod: %w", err)
		}
	}
	if c.NetworkPolicy != nil {
		if _, err := cs.NetworkingV1().NetworkPolicies(c.NetworkPolicy.Namespace).Patch(ctx, c.NetworkPolicy.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("linking the NetworkPolicy to its pod: %w", err)
		}
	}
	return nil
}

// remove deletes, Pod first, what Create made.
func (c *Created) remove(ctx context.Context, cs kubernetes.Interface) error {
	var errs []error
	ignoreNotFound := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if c.Pod != nil {
		ignoreNotFound(cs.CoreV1().Pods(c.Pod.Namespace).Delete(ctx, c.Pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: ptr.To(c.Pod.UID)},
		}))
	}
	if c.NetworkPolicy != nil {
		ignoreNotFound(cs.NetworkingV1().NetworkPolicies(c.NetworkPolicy.Namespace).Delete(ctx, c.NetworkPolicy.Name, metav1.DeleteOptions{}))
	}
	if c.Secret != nil {
		ignoreNotFound(cs.CoreV1().Secrets(c.Secret.Namespace).Delete(ctx, c.Secret.Name, metav1.DeleteOptions{}))
	}
	if c.Namespace != nil {
		ignoreNotFound(cs.CoreV1().Namespaces().Delete(ctx, c.Namespace.Name, metav1.DeleteOptions{}))
	}
	return errors.Join(errs...)
}

// IsManaged reports whether this plugin created the object.
func IsManaged(obj metav1.Object) bool {
	return obj.GetLabels()[LabelManagedBy] == ManagedBy
}

// Get returns the Pod of a sandbox, refusing Pods the plugin did not create.
func Get(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*corev1.Pod, error) {
	podName := PodName(name)
	pod, err := cs.CoreV1().Pods(namespace).Get(ctx, podName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &NotFoundError{Name: name, Namespace: namespace}
	}
	if err != nil {
		return nil, err
	}
	if !IsManaged(pod) {
		return nil, &NotManagedError{Name: name, Namespace: namespace, PodName: podName}
	}
	return pod, nil
}

// List returns the sandboxes in namespace ("" for all namespaces) that also
// match selector.
func List(ctx context.Context, cs kubernetes.Interface, namespace, selector string) ([]corev1.Pod, error) {
	sel, err := Selector(selector)
	if err != nil {
		return nil, err
	}
	list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// Selector adds the managed-by requirement to a user's label selector, so
// no selector can ever reach Pods the plugin did not create.
func Selector(user string) (string, error) {
	if strings.TrimSpace(user) == "" {
		return ManagedSelector, nil
	}
	if _, err := labels.Parse(user); err != nil {
		return "", fmt.Errorf("invalid --selector %q: %v", user, err)
	}
	return ManagedSelector + "," + user, nil
}

// Delete deletes a sandbox's Pod; the garbage collector removes the Secret
// and NetworkPolicy it owns. Dependents left without an owner (the plugin was
// killed between making them and making the Pod) are deleted here directly.
// It returns the deleted Pod's UID, or "" when only leftovers were removed.
func Delete(ctx context.Context, cs kubernetes.Interface, namespace, name string, gracePeriod *int64) (types.UID, error) {
	pod, getErr := Get(ctx, cs, namespace, name)
	var notFound *NotFoundError
	if getErr != nil && !errors.As(getErr, &notFound) {
		return "", getErr
	}
	var uid types.UID
	if pod != nil {
		err := cs.CoreV1().Pods(namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: gracePeriod,
			Preconditions:      &metav1.Preconditions{UID: ptr.To(pod.UID)},
			PropagationPolicy:  ptr.To(metav1.DeletePropagationBackground),
		})
		if apierrors.IsNotFound(err) {
			pod = nil
		} else if err != nil {
			return "", err
		} else {
			uid = pod.UID
		}
	}
	orphans, err := deleteOrphans(ctx, cs, namespace, name)
	if err != nil {
		return uid, err
	}
	if pod == nil && orphans == 0 {
		return "", &NotFoundError{Name: name, Namespace: namespace}
	}
	return uid, nil
}

func deleteOrphans(ctx context.Context, cs kubernetes.Interface, namespace, name string) (int, error) {
	sel := labels.SelectorFromSet(map[string]string{LabelSandbox: name, LabelManagedBy: ManagedBy}).String()
	n := 0
	nps, err := cs.NetworkingV1().NetworkPolicies(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return n, err
	}
	for _, np := range nps.Items {
		if len(np.OwnerReferences) == 0 {
			if err := cs.NetworkingV1().NetworkPolicies(namespace).Delete(ctx, np.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return n, err
			}
			n++
		}
	}
	secrets, err := cs.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return n, err
	}
	for _, s := range secrets.Items {
		if len(s.OwnerReferences) == 0 {
			if err := cs.CoreV1().Secrets(namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// podListWatch lists and watches one Pod by name. The client says whether it
// can stream the initial list (the API server can; a fake clientset cannot).
func podListWatch(cs kubernetes.Interface, namespace, podName string) cache.ListerWatcher {
	fieldSelector := fields.OneTermEqualSelector("metadata.name", podName).String()
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, options metav1.ListOptions) (runtime.Object, error) {
			options.FieldSelector = fieldSelector
			return cs.CoreV1().Pods(namespace).List(ctx, options)
		},
		WatchFuncWithContext: func(ctx context.Context, options metav1.ListOptions) (watch.Interface, error) {
			options.FieldSelector = fieldSelector
			return cs.CoreV1().Pods(namespace).Watch(ctx, options)
		},
	}, cs)
}

// WaitForDeleted watches until the Pod with uid is gone.
func WaitForDeleted(ctx context.Context, cs kubernetes.Interface, namespace, name string, uid types.UID, timeout time.Duration) error {
	ctx, cancel := watchtools.ContextWithOptionalTimeout(ctx, timeout)
	defer cancel()
	gone := func(store cache.Store) (bool, error) {
		for _, obj := range store.List() {
			if p, ok := obj.(*corev1.Pod); ok && p.UID == uid {
				return false, nil
			}
		}
		return true, nil
	}
	_, err := watchtools.UntilWithSync(ctx, podListWatch(cs, namespace, PodName(name)), &corev1.Pod{}, gone,
		func(ev watch.Event) (bool, error) {
			p, ok := ev.Object.(*corev1.Pod)
			return ev.Type == watch.Deleted && ok && p.UID == uid, nil
		})
	if isTimeout(err) {
		return fmt.Errorf("sandbox %q in namespace %q was not gone within %s; it may still be terminating: kubectl get pod %s -n %s",
			name, namespace, timeout, PodName(name), namespace)
	}
	return err
}

// isTimeout: the deadline passed (UntilWithSync may report it as a closed watch).
func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, watchtools.ErrWatchClosed) || wait.Interrupted(err)
}

// WaitForRunning watches the sandbox until it can exec. It returns at once,
// with the cluster's reason, when the sandbox cannot start.
func WaitForRunning(ctx context.Context, cs kubernetes.Interface, namespace, name string, timeout time.Duration) (*corev1.Pod, error) {
	waitCtx, cancel := watchtools.ContextWithOptionalTimeout(ctx, timeout)
	defer cancel()
	var last *corev1.Pod
	ev, err := watchtools.UntilWithSync(waitCtx, podListWatch(cs, namespace, PodName(name)), &corev1.Pod{}, nil,
		func(ev watch.Event) (bool, error) {
			if ev.Type == watch.Deleted {
				return false, &StartError{Name: name, Namespace: namespace, Reason: "Deleted", Message: "the pod was deleted while it was starting"}
			}
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				return false, nil
			}
			last = pod
			return Started(pod, name)
		})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if isTimeout(err) {
			state := "unknown"
			if last != nil {
				state = Status(last)
			}
			return nil, fmt.Errorf("sandbox %q in namespace %q was not running within %s (status: %s); wait longer with --timeout, or look at: kubectl describe pod %s -n %s",
				name, namespace, timeout, state, PodName(name), namespace)
		}
		return nil, err
	}
	return ev.Object.(*corev1.Pod), nil
}

// fatalWaiting are container waiting reasons that do not clear by themselves
// in the time a user waits for a sandbox.
var fatalWaiting = map[string]bool{
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"CrashLoopBackOff":           true,
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
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return fail(c.Reason, c.Message)
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && fatalWaiting[w.Reason] {
			return fail(w.Reason, w.Message)
		}
		if t := cs.State.Terminated; t != nil {
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
