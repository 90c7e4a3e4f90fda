package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// FenceGate is the scheduling gate every sandbox Pod is created with. A
// gated Pod is never scheduled, so it never runs: its Secret and
// NetworkPolicy are made while it waits, already owned by it, and only then
// is the gate lifted. There is no moment in which a sandbox runs without its
// policy, and no moment in which a policy or Secret of ours has no owner —
// so no create ever has to guess whether another create's objects are
// stale, and a create that dies half-way leaves a Pod that never ran, whose
// dependents the garbage collector removes with it.
const FenceGate = "agentkernel/fenced"

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

// CreateOptions are the choices of `create` beyond the Spec.
type CreateOptions struct {
	// SecretValues holds the values of Spec.SecretEnvNames, and the keys
	// of Spec.Inject's variables: those go into the namespace's key table
	// only (keytable.go), never into the sandbox's Secret.
	SecretValues map[string]string
	// ServerDryRun sends every object with dryRun=All: admission runs, nothing is stored.
	ServerDryRun    bool
	CreateNamespace bool
	// Wait until the sandbox can exec, failing fast with the cluster's reason.
	Wait    bool
	Timeout time.Duration
	// Progress, if set, hears each new state of the Pod while Create waits
	// (e.g. "Pending: Unschedulable: ..." or "ErrImagePull: 429 Too Many Requests").
	Progress func(state string)
	// Prepare, if set, runs once the namespace exists and before anything
	// of the sandbox is made, and may complete the spec: create installs
	// the namespace's egress proxy there and fills in its address.
	Prepare func(ctx context.Context, spec *Spec) error

	// resume, set by Resume, is the workspace of a suspended sandbox: the
	// new Pod uses it instead of a new one, and its Secret is already there.
	resume *corev1.PersistentVolumeClaim
}

// Created is what Create made.
type Created struct {
	Namespace *corev1.Namespace // nil unless Create made it
	// Workspace is a persistent sandbox's claim (Create made it, or Resume
	// found it).
	Workspace     *corev1.PersistentVolumeClaim
	Secret        *corev1.Secret
	NetworkPolicy *networkingv1.NetworkPolicy
	Pod           *corev1.Pod
	// KeyEntry is the sandbox's entry in the key table, if it has one.
	KeyEntry *KeyEntry
	// AdmissionChanges are what the cluster's admission changed about the
	// Pod asked for (see AdmissionChanges); the caller tells the user.
	AdmissionChanges []AdmissionChange

	madeWorkspace bool // Workspace is this call's, to remove if it fails
}

// Create makes the sandbox: namespace (if asked), the Pod behind a
// scheduling gate, its Secret and NetworkPolicy owned by it, then lifts the
// gate. If anything fails — including the wait, or ctx being cancelled —
// everything this call made is removed again, by UID, on the cleanup
// context (see WithCleanupContext): a second Ctrl-C stops the cleanup and
// the error names what is left.
func Create(ctx context.Context, cs kubernetes.Interface, spec *Spec, o CreateOptions) (_ *Created, err error) {
	var dryRun []string
	if o.ServerDryRun {
		dryRun = []string{metav1.DryRunAll}
	}
	// The server's version and the namespace's UID range are read beside
	// the rest of what only the cluster can tell: no round trip of their own.
	var wg sync.WaitGroup
	var tooOld, nsErr error
	wg.Go(func() { tooOld = CheckServerVersion(ctx, cs) })
	wg.Go(func() { nsErr = spec.FromNamespace(ctx, cs) })
	spec.FromCluster(ctx, cs)
	wg.Wait()
	if tooOld != nil {
		return &Created{}, tooOld
	}
	if nsErr != nil {
		return &Created{}, nsErr
	}
	created := &Created{}
	defer func() {
		if err != nil && !o.ServerDryRun {
			if cerr := created.remove(ctx, cs); cerr != nil {
				err = fmt.Errorf("%w; %v", err, cerr)
			}
		}
	}()

	if o.CreateNamespace {
		if err := created.createNamespace(ctx, cs, spec.Namespace, o.ServerDryRun); err != nil {
			return created, err
		}
	}

	if o.Prepare != nil {
		if err := o.Prepare(ctx, spec); err != nil {
			return created, err
		}
	}
	workspace, err := created.workspace(ctx, cs, spec, o, dryRun)
	if err != nil {
		return created, err
	}
	entry, err := spec.newKeyEntry(o.SecretValues)
	if err != nil {
		return created, err
	}
	pod := spec.Pod()
	pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: FenceGate}}
	if workspace != nil {
		pod.OwnerReferences = append(pod.OwnerReferences, workspaceOwner(workspace))
	}
	call := RandomHex(8)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[annotationCreateCall] = call
	got, err := cs.CoreV1().Pods(spec.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: dryRun})
	if err != nil && ctx.Err() != nil && !o.ServerDryRun {
		created.Pod = madeAnyway(ctx, cs, pod.Namespace, pod.Name, call)
	}
	if apierrors.IsAlreadyExists(err) && spec.Shape == nil {
		return created, nameTaken(ctx, cs, spec)
	}
	if err != nil {
		return created, fmt.Errorf("creating the sandbox's pod: %w", spec.rangeRefusal(err))
	}
	if !o.ServerDryRun {
		created.Pod = got
	}
	if err := created.admitted(spec, pod, got); err != nil {
		return created, err
	}
	owner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: got.Name, UID: got.UID, Controller: ptr.To(true)}}
	if spec.Shape != nil && spec.Workspace != nil {
		if err := created.memberWorkspace(ctx, cs, spec, got, dryRun); err != nil {
			return created, err
		}
	}
	if workspace == nil && !o.ServerDryRun {
		// Before any dependent is made: a suspended sandbox's Secret must
		// not look like a stale one to this create.
		if err := workspaceStays(ctx, cs, spec, nil); err != nil {
			return created, err
		}
	}

	if len(entry.Credentials) > 0 && !o.ServerDryRun {
		// The Pod is gated: it cannot run, and no one can use the entry,
		// before the entry is written and the gate lifted. Written only
		// now that the Pod name is this call's, it never replaces the
		// entry of another sandbox of the name.
		if created.KeyEntry, err = PutKeyEntry(ctx, cs, spec.Namespace, got.Name, entry); err != nil {
			return created, err
		}
	}
	if secret := spec.Secret(o.SecretValues); secret != nil && o.resume == nil {
		secret.OwnerReferences = owner
		if workspace != nil {
			// The Secret belongs to the sandbox, not to one of its Pods.
			secret.OwnerReferences = []metav1.OwnerReference{workspaceOwner(workspace)}
		}
		s, err := createOwned(ctx, cs, got, secret, secretAPI(cs, spec.Namespace), dryRun)
		if err != nil {
			return created, fmt.Errorf("creating the sandbox's secret: %w", err)
		}
		created.Secret = s
	}
	if np := spec.NetworkPolicy(); np != nil {
		np.OwnerReferences = owner
		np.Name = got.Name // a pool member's name is known only now
		p, err := createOwned(ctx, cs, got, np, policyAPI(cs, spec.Namespace), dryRun)
		if err != nil {
			return created, fmt.Errorf("creating the sandbox's NetworkPolicy: %w", err)
		}
		created.NetworkPolicy = p
	}
	if o.ServerDryRun {
		created.Pod = got
		return created, nil
	}
	// A sandbox claimed from a pool holds the name by label, not by Pod
	// name: if one appeared, back off (it may back off too; never both stay).
	if err := NameHeldElsewhere(ctx, cs, spec, got.UID); err != nil {
		return created, err
	}
	if workspace != nil {
		if err := workspaceStays(ctx, cs, spec, workspace); err != nil {
			return created, err
		}
	}
	started, err := Ungate(ctx, cs, got)
	if err != nil {
		return created, err
	}
	created.Pod = started
	if err := created.admitted(spec, ungated(got), started); err != nil {
		return created, err // what an update's admission did
	}
	if o.Wait {
		running, err := WaitForRunning(ctx, cs, created.Pod, o.Timeout, o.Progress)
		if err != nil {
			return created, err
		}
		created.Pod = running
	}
	return created, nil
}

func (c *Created) createNamespace(ctx context.Context, cs kubernetes.Interface, name string, serverDryRun bool) error {
	var dryRun []string
	if serverDryRun {
		// The API server dry-runs objects only inside namespaces that exist:
		// say so instead of failing later with "namespace not found".
		if _, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{}); err == nil {
			return nil
		} else if !apierrors.IsNotFound(err) {
			return err
		}
		dryRun = []string{metav1.DryRunAll}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: RestrictedNamespaceLabels()}}
	got, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{DryRun: dryRun})
	switch {
	case err == nil && serverDryRun:
		return field.WithStep(fmt.Errorf("namespace %q does not exist yet: the API server accepted it in a dry run, but it cannot dry-run objects inside a namespace that does not exist", name),
			field.Step{Hint: field.HintClientDryRun, Namespace: name})
	case err == nil:
		c.Namespace = got
	case apierrors.IsAlreadyExists(err):
		// An existing namespace is the admin's: use it as it is.
	default:
		return fmt.Errorf("creating namespace %q: %w", name, err)
	}
	return nil
}

// nameTaken explains why the sandbox's Pod name is taken.
func nameTaken(ctx context.Context, cs kubernetes.Interface, spec *Spec) error {
	existing, err := cs.CoreV1().Pods(spec.Namespace).Get(ctx, PodName(spec.Name), metav1.GetOptions{})
	if err == nil {
		if why := Ours(existing, spec.Name); why != nil {
			return &NotManagedError{Name: spec.Name, Namespace: spec.Namespace, PodName: existing.Name, Reason: why.Error()}
		}
	}
	return &AlreadyExistsError{Name: spec.Name, Namespace: spec.Namespace}
}

// NameHeldElsewhere reports an AlreadyExistsError when another live Pod
// than mine holds the sandbox name by label (a sandbox claimed from a pool).
func NameHeldElsewhere(ctx context.Context, cs kubernetes.Interface, spec *Spec, mine types.UID) error {
	if spec.Shape != nil {
		return nil // a warm pool member holds no name yet
	}
	list, err := cs.CoreV1().Pods(spec.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(map[string]string{LabelManagedBy: ManagedBy, LabelSandbox: spec.Name}).String(),
	})
	if err != nil {
		return err
	}
	for i := range list.Items {
		p := &list.Items[i]
		if p.UID != mine && p.DeletionTimestamp == nil && Ours(p, spec.Name) == nil {
			return &AlreadyExistsError{Name: spec.Name, Namespace: spec.Namespace}
		}
	}
	return nil
}

// Ungate lifts FenceGate so the Pod can be scheduled. The patch tests the
// UID and the gate's place first: a Pod re-created under the same name
// meanwhile is not started by mistake, and gates others (an admission
// webhook's) put on the Pod stay.
func Ungate(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) (*corev1.Pod, error) {
	i := slices.IndexFunc(pod.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == FenceGate })
	if i < 0 {
		return pod, nil
	}
	patch := fmt.Sprintf(`[{"op":"test","path":"/metadata/uid","value":%q},`+
		`{"op":"test","path":"/spec/schedulingGates/%d/name","value":%q},`+
		`{"op":"remove","path":"/spec/schedulingGates/%d"}]`, pod.UID, i, FenceGate, i)
	got, err := cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("starting the sandbox's pod (lifting its scheduling gate): %w", err)
	}
	return got, nil
}

// CreateOwnedSecret creates secret, owned by pod, replacing an object of
// its name only when it is provably stale (see createOwned): the Secret a
// claim brings to the member it takes.
func CreateOwnedSecret(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, secret *corev1.Secret) (*corev1.Secret, error) {
	return createOwned(ctx, cs, pod, secret, secretAPI(cs, pod.Namespace), nil)
}

// objectAPI is the slice of a typed client createOwned needs.
type objectAPI[T metav1.Object] struct {
	kind   string
	create func(context.Context, T, metav1.CreateOptions) (T, error)
	get    func(context.Context, string, metav1.GetOptions) (T, error)
	delete func(context.Context, string, metav1.DeleteOptions) error
}

func secretAPI(cs kubernetes.Interface, ns string) objectAPI[*corev1.Secret] {
	c := cs.CoreV1().Secrets(ns)
	return objectAPI[*corev1.Secret]{"secret", c.Create, c.Get, c.Delete}
}

func policyAPI(cs kubernetes.Interface, ns string) objectAPI[*networkingv1.NetworkPolicy] {
	c := cs.NetworkingV1().NetworkPolicies(ns)
	return objectAPI[*networkingv1.NetworkPolicy]{"NetworkPolicy", c.Create, c.Get, c.Delete}
}

// createOwned creates obj, owned by pod. An object of the same name is
// replaced only when it is provably stale: ours, and owned by a Pod that no
// longer exists (the garbage collector has not caught up with a sandbox
// deleted a moment ago). It is deleted with its UID as precondition, so a
// newer object of that name is never hit.
func createOwned[T metav1.Object](ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, obj T, api objectAPI[T], dryRun []string) (T, error) {
	for attempt := 0; ; attempt++ {
		got, err := api.create(ctx, obj, metav1.CreateOptions{DryRun: dryRun})
		if !apierrors.IsAlreadyExists(err) || attempt == 3 {
			return got, err
		}
		existing, err := api.get(ctx, obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // gone meanwhile
		}
		if err != nil {
			return got, err
		}
		if !IsManaged(existing) {
			return got, fmt.Errorf("%s %q in namespace %q exists and was not made by %s; remove it or pick another sandbox name",
				api.kind, existing.GetName(), existing.GetNamespace(), Product)
		}
		live, err := ownerLives(ctx, cs, existing, pod.UID)
		if err != nil {
			return got, err
		}
		if live {
			return got, fmt.Errorf("%s %q in namespace %q belongs to another sandbox that still exists; pick another sandbox name",
				api.kind, existing.GetName(), existing.GetNamespace())
		}
		err = api.delete(ctx, existing.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(existing.GetUID())}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return got, fmt.Errorf("removing the stale %s of a previous sandbox: %w", api.kind, err)
		}
	}
}

// ownerLives reports whether obj's owner Pod (other than mine), or the
// workspace that owns a persistent sandbox's Secret, still exists.
// An object of ours without an owner was made by an earlier version of the
// plugin, which adopted after creating: it is stale once a new Pod holds
// the name.
func ownerLives(ctx context.Context, cs kubernetes.Interface, obj metav1.Object, mine types.UID) (bool, error) {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Kind == "PersistentVolumeClaim" && ref.APIVersion == "v1" {
			// A persistent sandbox's Secret belongs to its workspace, which
			// lives while the sandbox is suspended (no Pod at all).
			w, err := cs.CoreV1().PersistentVolumeClaims(obj.GetNamespace()).Get(ctx, ref.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return false, err
			case w.UID == ref.UID:
				return true, nil
			}
			continue
		}
		if ref.Kind != "Pod" || ref.UID == mine {
			continue
		}
		p, err := cs.CoreV1().Pods(obj.GetNamespace()).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return false, err
		case p.UID == ref.UID:
			return true, nil
		}
	}
	return false, nil
}

// remove deletes, by UID and Pod first, what Create made. It runs on the
// cleanup context, which outlives a cancelled ctx (Ctrl-C) but not a second
// interrupt; if that comes, the error names what is left.
func (c *Created) remove(ctx context.Context, cs kubernetes.Interface) error {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	type item struct {
		what string
		del  func() error
	}
	var items []item
	byUID := func(uid types.UID) metav1.DeleteOptions {
		return metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(uid)}}
	}
	if p := c.Pod; p != nil {
		items = append(items, item{"pod/" + p.Name, func() error {
			o := byUID(p.UID)
			o.GracePeriodSeconds = ptr.To[int64](0)
			return cs.CoreV1().Pods(p.Namespace).Delete(cctx, p.Name, o)
		}})
	}
	if k := c.KeyEntry; k != nil {
		items = append(items, item{"the entry " + k.Pod + " of secret/" + keys.SecretName, func() error {
			return k.Remove(cctx, cs)
		}})
	}
	if np := c.NetworkPolicy; np != nil {
		items = append(items, item{"networkpolicy/" + np.Name, func() error {
			return cs.NetworkingV1().NetworkPolicies(np.Namespace).Delete(cctx, np.Name, byUID(np.UID))
		}})
	}
	if s := c.Secret; s != nil {
		items = append(items, item{"secret/" + s.Name, func() error {
			return cs.CoreV1().Secrets(s.Namespace).Delete(cctx, s.Name, byUID(s.UID))
		}})
	}
	if w := c.Workspace; w != nil && c.madeWorkspace {
		items = append(items, item{"persistentvolumeclaim/" + w.Name, func() error {
			return cs.CoreV1().PersistentVolumeClaims(w.Namespace).Delete(cctx, w.Name, byUID(w.UID))
		}})
	}
	if ns := c.Namespace; ns != nil {
		items = append(items, item{"namespace/" + ns.Name, func() error {
			return cs.CoreV1().Namespaces().Delete(cctx, ns.Name, byUID(ns.UID))
		}})
	}
	var left []string
	var errs []error
	for _, it := range items {
		if cctx.Err() != nil {
			left = append(left, it.what)
			continue
		}
		if err := it.del(); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			left = append(left, it.what)
			if cctx.Err() == nil {
				errs = append(errs, err)
			}
		}
	}
	if len(left) == 0 {
		return nil
	}
	ns := c.namespace()
	why := "cleaning up failed"
	if cctx.Err() != nil {
		why = "cleanup was interrupted"
	}
	msg := fmt.Sprintf("%s; left behind in namespace %q: %s (remove with: kubectl delete -n %s %s)", why, ns, strings.Join(left, ", "), ns, strings.Join(left, " "))
	if len(errs) > 0 {
		msg += ": " + errors.Join(errs...).Error()
	}
	return errors.New(msg)
}

func (c *Created) namespace() string {
	switch {
	case c.Pod != nil:
		return c.Pod.Namespace
	case c.Secret != nil:
		return c.Secret.Namespace
	case c.NetworkPolicy != nil:
		return c.NetworkPolicy.Namespace
	case c.Namespace != nil:
		return c.Namespace.Name
	}
	return ""
}

// annotationCreateCall marks a Pod with the Create call that made it: a
// random value of that call's own.
const annotationCreateCall = "agentkernel/create-call"

// madeAnyway finds the Pod of an interrupted create request: the API
// server may have made it although the request's context ended before the
// answer came (Ctrl-C while the request was in flight). Only a Pod this
// call made (its create-call mark) is returned, to be removed like any
// other part of the call; nil when there is none or it cannot be read.
func madeAnyway(ctx context.Context, cs kubernetes.Interface, namespace, name, call string) *corev1.Pod {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	pod, err := cs.CoreV1().Pods(namespace).Get(cctx, name, metav1.GetOptions{})
	if err != nil || pod.Annotations[annotationCreateCall] != call {
		return nil
	}
	return pod
}
