package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A pool is warm sandboxes waiting to be claimed, kept with nothing but
// built-in objects and namespace-scoped RBAC: its definition is a core/v1
// PodTemplate named agentkernel-pool-NAME (a namespaced object made to hold
// exactly a Pod template; the size and the sandbox Spec are annotations),
// and its members are sandboxes made by Create (poolmember.go), owned by
// that PodTemplate. No controller runs: whoever claims a member creates its
// replacement, and every pool command reconciles the member count.

// Annotations of a pool's PodTemplate (and, for the spec, of its members).
const (
	AnnotationPoolSize = "agentkernel/pool-size"
	AnnotationPoolSpec = "agentkernel/pool-spec"
)

// MaxPoolNameLength keeps a member's generated name whole: the API server
// cuts a generateName prefix down to 58 characters, and a member must keep
// the prefix agentkernel-pool-NAME- to be recognised (Ours).
const MaxPoolNameLength = validation.DNS1123LabelMaxLength - 5 - len(sandbox.NamePrefix+"pool-") - 1

// MaxPoolSize bounds --size: a typo must not start ten thousand Pods.
const MaxPoolSize = 1000

// poolSpecVersion is the version of the AnnotationPoolSpec format.
const poolSpecVersion = 1

// PoolTemplateName is the name of the PodTemplate that defines pool.
func PoolTemplateName(pool string) string { return sandbox.NamePrefix + "pool-" + pool }

// ValidatePoolName checks a pool name.
func ValidatePoolName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("a pool name is required")
	case len(name) > MaxPoolNameLength:
		return fmt.Errorf("pool name %q is %d characters long; at most %d are allowed (members are named %q + name + a random suffix, a DNS label of at most 63)",
			name, len(name), MaxPoolNameLength, sandbox.NamePrefix+"pool-")
	case len(validation.IsDNS1123Label(name)) > 0:
		return fmt.Errorf("invalid pool name %q: use lower-case letters, digits and '-', starting and ending with a letter or digit (e.g. %q)", name, "agents")
	case name == sandbox.PoolActive:
		return fmt.Errorf("pool name %q is reserved: cold sandboxes carry %s=%s", name, sandbox.LabelPool, sandbox.PoolActive)
	}
	return nil
}

// ValidatePoolSize checks --size; a new pool needs at least one member.
func ValidatePoolSize(size int, creating bool) error {
	switch {
	case size < 0:
		return field.Invalid("size", "`size` must not be negative (got %d)", size)
	case size == 0 && creating:
		return field.Error{Field: "size", Detail: "`size` must be at least 1: a pool of no members keeps nothing warm", Step: field.Step{Hint: field.HintNoPool}}
	case size > MaxPoolSize:
		return field.Invalid("size", "`size` %d is more than %d", size, MaxPoolSize)
	}
	return nil
}

// Pool is the definition of a pool.
type Pool struct {
	Name, Namespace string
	Size            int
	// Spec is what every member is, and what a claim gets: a sandbox
	// without a name. Its TTL and IdleTimeout start when a member is
	// claimed. It never has SecretEnvNames: secrets are the claim's.
	Spec sandbox.Spec

	// UID and ResourceVersion of the PodTemplate, once it exists.
	UID               types.UID
	ResourceVersion   string
	CreationTimestamp metav1.Time
}

// NewPool returns the definition of a pool of size members shaped by spec.
func NewPool(name string, spec sandbox.Spec, size int) (*Pool, error) {
	if err := ValidatePoolName(name); err != nil {
		return nil, err
	}
	if err := ValidatePoolSize(size, true); err != nil {
		return nil, err
	}
	if len(spec.SecretEnvNames) > 0 {
		return nil, field.Error{Field: "secretEnvNames", Detail: "`secretEnvNames` belongs to a claim, not to a pool: every warm member would hold the secret",
			Step: field.Step{Hint: field.HintSecretOnClaim, Pool: name, Value: spec.SecretEnvNames[0]}}
	}
	s := spec.Clone()
	s.Shape = nil
	check := s.Clone()
	check.Name = name // any valid sandbox name: the definition has none
	if err := check.Validate(); err != nil {
		return nil, err
	}
	s.Name = ""
	return &Pool{Name: name, Namespace: spec.Namespace, Size: size, Spec: s}, nil
}

// owner is the ownerReference every member carries to the pool.
func (p *Pool) owner() metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "PodTemplate", Name: PoolTemplateName(p.Name), UID: p.UID}
}

// definition is the pool's Spec as stored in AnnotationPoolSpec.
func (p *Pool) definition() string {
	return encodeDefinition(&p.Spec)
}

type storedDefinition struct {
	Version int          `json:"version"`
	Spec    sandbox.Spec `json:"spec"`
}

func encodeDefinition(s *sandbox.Spec) string {
	c := s.Clone()
	c.Name, c.Namespace, c.Shape = "", "", nil
	b, err := json.Marshal(storedDefinition{Version: poolSpecVersion, Spec: c})
	if err != nil {
		panic(fmt.Sprintf("a Spec always encodes: %v", err))
	}
	return string(b)
}

func decodeDefinition(text, namespace string) (*sandbox.Spec, error) {
	var d storedDefinition
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		return nil, fmt.Errorf("its %s annotation is not a pool definition: %v", AnnotationPoolSpec, err)
	}
	if d.Version != poolSpecVersion {
		return nil, fmt.Errorf("its pool definition has version %d; this %s reads version %d: upgrade it", d.Version, sandbox.Product, poolSpecVersion)
	}
	d.Spec.Namespace = namespace
	return &d.Spec, nil
}

// memberSpec is the Spec of a new member of the pool.
func (p *Pool) memberSpec() *sandbox.Spec {
	return memberSpec(&p.Spec, p.Namespace, p.Name, p.definition(), p.owner())
}

// PodTemplate is the object that stores the pool: its template is exactly
// the Pod every member is (as `kubectl get podtemplate -o yaml` shows an
// admin), its annotations the size and the Spec it is made from.
func (p *Pool) PodTemplate() *corev1.PodTemplate {
	member := p.memberSpec().Pod()
	delete(member.Labels, LabelFence) // each member's own
	delete(member.Annotations, AnnotationPoolSpec)
	return &corev1.PodTemplate{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodTemplate"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      PoolTemplateName(p.Name),
			Namespace: p.Namespace,
			Labels:    map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelPool: p.Name},
			Annotations: map[string]string{
				AnnotationPoolSize: strconv.Itoa(p.Size),
				AnnotationPoolSpec: p.definition(),
			},
		},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: member.Labels, Annotations: member.Annotations},
			Spec:       member.Spec,
		},
	}
}

// PoolFromTemplate reads a pool's definition back from its PodTemplate.
func PoolFromTemplate(t *corev1.PodTemplate) (*Pool, error) {
	name := t.Labels[sandbox.LabelPool]
	if !sandbox.IsManaged(t) || name == "" || t.Name != PoolTemplateName(name) {
		return nil, &NotAPoolError{Name: name, Namespace: t.Namespace, TemplateName: t.Name}
	}
	size, err := strconv.Atoi(t.Annotations[AnnotationPoolSize])
	if err != nil || size < 0 {
		return nil, field.WithStep(fmt.Errorf("pool %q in namespace %q: its %s annotation %q is not a size", name, t.Namespace, AnnotationPoolSize, t.Annotations[AnnotationPoolSize]),
			field.Step{Hint: field.HintFixSize, Name: name, Namespace: t.Namespace})
	}
	spec, err := decodeDefinition(t.Annotations[AnnotationPoolSpec], t.Namespace)
	if err != nil {
		return nil, fmt.Errorf("pool %q in namespace %q: %v", name, t.Namespace, err)
	}
	return &Pool{Name: name, Namespace: t.Namespace, Size: size, Spec: *spec,
		UID: t.UID, ResourceVersion: t.ResourceVersion, CreationTimestamp: t.CreationTimestamp}, nil
}

// GetPool reads the definition of pool name.
func GetPool(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*Pool, error) {
	t, err := cs.CoreV1().PodTemplates(namespace).Get(ctx, PoolTemplateName(name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &PoolNotFoundError{Name: name, Namespace: namespace}
	}
	if err != nil {
		return nil, err
	}
	return PoolFromTemplate(t)
}

// ListPools returns the pools in namespace ("" for all). A PodTemplate of
// ours that does not parse is reported in errs, and the others still listed.
func ListPools(ctx context.Context, cs kubernetes.Interface, namespace string) (pools []*Pool, errs []error, err error) {
	list, err := cs.CoreV1().PodTemplates(namespace).List(ctx, metav1.ListOptions{LabelSelector: sandbox.ManagedSelector + "," + sandbox.LabelPool})
	if err != nil {
		return nil, nil, err
	}
	for i := range list.Items {
		p, err := PoolFromTemplate(&list.Items[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pools = append(pools, p)
	}
	sort.Slice(pools, func(i, j int) bool {
		if pools[i].Namespace != pools[j].Namespace {
			return pools[i].Namespace < pools[j].Namespace
		}
		return pools[i].Name < pools[j].Name
	})
	return pools, errs, nil
}

// poolSelector selects the Pods of a pool: warm members and, unless
// onlyWarm, sandboxes claimed from it.
func poolSelector(pool string, onlyWarm bool) string {
	sel := labels.SelectorFromSet(labels.Set{sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelPool: pool})
	if onlyWarm {
		req, _ := labels.NewRequirement(sandbox.LabelSandbox, selection.DoesNotExist, nil)
		sel = sel.Add(*req)
	}
	return sel.String()
}

// PoolStatus is what a pool has, counted from its Pods.
type PoolStatus struct {
	Pool *Pool
	// Ready members can be claimed now; Starting ones are on their way
	// (or stuck: see Problems).
	Ready, Starting int
	// Claimed counts the live sandboxes claimed from the pool.
	Claimed int
	// Problems are the states of members that are waiting on something,
	// with the cluster's message ("2 × ErrImagePull: ..."), most common first.
	Problems []string
	// Created and Removed count what Reconcile did.
	Created, Removed int
}

// Members is Ready + Starting.
func (s *PoolStatus) Members() int { return s.Ready + s.Starting }

// memberState sorts a pool's Pods.
type memberState int

const (
	stateOther    memberState = iota // not a member of this generation of the pool
	stateReady                       // claimable
	stateStarting                    // on its way, or stuck
	stateDead                        // finished, failed, or of an older generation: to delete
	stateGoing                       // being deleted
	stateClaimed                     // a live sandbox claimed from the pool
)

func classify(pod *corev1.Pod, p *Pool) memberState {
	if pod.Labels[sandbox.LabelPool] != p.Name {
		return stateOther
	}
	if pod.Labels[sandbox.LabelSandbox] != "" {
		if pod.DeletionTimestamp == nil && sandbox.Ours(pod, sandbox.NameOf(pod)) == nil {
			return stateClaimed
		}
		return stateOther
	}
	if isMember(pod, p.Name) != nil {
		return stateOther
	}
	switch {
	case pod.DeletionTimestamp != nil:
		return stateGoing
	case !ownedByPool(pod, p.UID):
		// Left by a pool of this name that was deleted: the garbage
		// collector removes it too; it must not be claimed meanwhile.
		return stateDead
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return stateDead
	}
	if started, err := sandbox.Started(pod, ""); started && err == nil {
		return stateReady
	}
	return stateStarting
}

// Reconcile brings the pool to its size: it deletes members that finished,
// that belong to an earlier pool of this name, or that are more than the
// size (those not ready yet first), and creates the missing ones without
// waiting for them. Deletes carry the member's UID and resourceVersion as
// preconditions, so a member claimed in the meantime is never hit. Run
// concurrently (several clients at once) it may overshoot or undershoot for
// a moment; the next reconcile corrects it.
func Reconcile(ctx context.Context, cs kubernetes.Interface, p *Pool) (*PoolStatus, error) {
	list, err := cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(p.Name, false)})
	if err != nil {
		return nil, err
	}
	st := &PoolStatus{Pool: p}
	var ready, starting, remove []*corev1.Pod
	for i := range list.Items {
		pod := &list.Items[i]
		switch classify(pod, p) {
		case stateReady:
			ready = append(ready, pod)
		case stateStarting:
			starting = append(starting, pod)
		case stateDead:
			remove = append(remove, pod)
		case stateClaimed:
			st.Claimed++
		}
	}
	// Extras go least warm first: starting before ready, youngest first.
	youngestFirst := func(a, b *corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) }
	slices.SortFunc(starting, youngestFirst)
	slices.SortFunc(ready, youngestFirst)
	for len(ready)+len(starting) > p.Size {
		if len(starting) > 0 {
			remove, starting = append(remove, starting[0]), starting[1:]
		} else {
			remove, ready = append(remove, ready[0]), ready[1:]
		}
	}
	st.Ready, st.Starting = len(ready), len(starting)
	st.Problems = problems(starting)

	var errs []error
	for _, pod := range remove {
		switch err := deleteMember(ctx, cs, pod); {
		case err == nil:
			st.Removed++
		case !apierrors.IsNotFound(err) && !apierrors.IsConflict(err):
			errs = append(errs, fmt.Errorf("removing pool member %s: %w", pod.Name, err))
		}
	}
	missing := p.Size - st.Members()
	if missing > 0 {
		made, err := createMembers(ctx, cs, p, missing)
		st.Created, st.Starting = made, st.Starting+made
		if err != nil {
			errs = append(errs, err)
		}
	}
	return st, errors.Join(errs...)
}

// deleteMember deletes a warm member only if it is still the Pod that was
// read: the resourceVersion precondition fails once a claim has written it.
func deleteMember(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) error {
	return sandbox.DeleteUnchanged(ctx, cs, pod)
}

// createMembers makes n members, a few at a time.
func createMembers(ctx context.Context, cs kubernetes.Interface, p *Pool, n int) (int, error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	made := 0
	limit := make(chan struct{}, 8)
	for range n {
		wg.Go(func() {
			limit <- struct{}{}
			defer func() { <-limit }()
			_, err := createMember(ctx, cs, p.memberSpec())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			made++
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		// One reason is enough: n creates of one spec fail alike.
		return made, fmt.Errorf("creating %d of %d members of pool %q: %w", len(errs), n, p.Name, errs[0])
	}
	return made, nil
}

// problems sums up why members are not ready, with the cluster's words.
func problems(starting []*corev1.Pod) []string {
	count := map[string]int{}
	for _, pod := range starting {
		d := sandbox.Describe(pod)
		if !strings.Contains(d, ": ") || strings.HasPrefix(d, "SchedulingGated") {
			continue // plain Pending/ContainerCreating: just on its way
		}
		count[d]++
	}
	out := make([]string, 0, len(count))
	for d := range count {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if count[out[i]] != count[out[j]] {
			return count[out[i]] > count[out[j]]
		}
		return out[i] < out[j]
	})
	for i, d := range out {
		if n := count[d]; n > 1 {
			out[i] = fmt.Sprintf("%d × %s", n, d)
		}
	}
	return out
}

// PoolOptions are the choices of CreatePool and ScalePool beyond the pool.
type PoolOptions struct {
	// Wait until Size members are ready, failing fast when one cannot start.
	Wait     bool
	Timeout  time.Duration
	Progress func(state string)
}

// CreatePool stores the pool's definition and makes its members. A name
// already taken is refused. If anything fails (including the wait, or ctx
// being cancelled) the pool and the members made are removed again, on the
// cleanup context.
func CreatePool(ctx context.Context, cs kubernetes.Interface, p *Pool, o PoolOptions) (_ *PoolStatus, err error) {
	t, err := cs.CoreV1().PodTemplates(p.Namespace).Create(ctx, p.PodTemplate(), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := cs.CoreV1().PodTemplates(p.Namespace).Get(ctx, PoolTemplateName(p.Name), metav1.GetOptions{})
		if gerr == nil && !sandbox.IsManaged(existing) {
			return nil, &NotAPoolError{Name: p.Name, Namespace: p.Namespace, TemplateName: existing.Name}
		}
		return nil, &PoolExistsError{Name: p.Name, Namespace: p.Namespace}
	}
	if err != nil {
		return nil, fmt.Errorf("creating pool %q: %w", p.Name, err)
	}
	p.UID, p.ResourceVersion, p.CreationTimestamp = t.UID, t.ResourceVersion, t.CreationTimestamp
	defer func() {
		if err != nil {
			if cerr := removePool(ctx, cs, p); cerr != nil {
				err = fmt.Errorf("%w; %v", err, cerr)
			}
		}
	}()
	st, err := Reconcile(ctx, cs, p)
	if err != nil {
		return st, err
	}
	if o.Wait {
		return WaitForPool(ctx, cs, p, o.Timeout, o.Progress)
	}
	return st, nil
}

// removePool undoes a CreatePool: the PodTemplate and its members, by UID.
func removePool(ctx context.Context, cs kubernetes.Interface, p *Pool) error {
	cctx, cancel := sandbox.CleanupContext(ctx)
	defer cancel()
	err := cs.CoreV1().PodTemplates(p.Namespace).Delete(cctx, PoolTemplateName(p.Name), metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: ptr.To(p.UID)},
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
	})
	if err != nil && !apierrors.IsNotFound(err) {
		left := field.WithStep(fmt.Errorf("cleaning up failed; left behind in namespace %q: podtemplate/%s and its pods", p.Namespace, PoolTemplateName(p.Name)),
			field.Step{Hint: field.HintRemovePool, Name: p.Name, Namespace: p.Namespace})
		return fmt.Errorf("%w: %v", left, err)
	}
	// The garbage collector would remove the members too; deleting them
	// now means a failed create leaves nothing even for a moment longer.
	if _, err := deleteWarmMembers(cctx, cs, p); err != nil {
		return fmt.Errorf("cleaning up failed; members of pool %q may be left in namespace %q until the garbage collector removes them: %v", p.Name, p.Namespace, err)
	}
	return nil
}

// WaitForPool watches the pool's members until Size of them are ready. It
// returns at once, with the cluster's reason, when a member cannot start.
func WaitForPool(ctx context.Context, cs kubernetes.Interface, p *Pool, timeout time.Duration, progress func(string)) (*PoolStatus, error) {
	var last *PoolStatus
	lastProblems := ""
	err := watchPool(ctx, cs, p, timeout, func(pods map[types.UID]*corev1.Pod) (bool, error) {
		st := &PoolStatus{Pool: p}
		var starting []*corev1.Pod
		for _, pod := range pods {
			switch classify(pod, p) {
			case stateReady:
				st.Ready++
			case stateStarting:
				if _, err := sandbox.Started(pod, ""); err != nil {
					return false, memberStartError(p, pod, err)
				}
				starting = append(starting, pod)
			case stateClaimed:
				st.Claimed++
			}
		}
		st.Starting, st.Problems = len(starting), problems(starting)
		last = st
		if text := strings.Join(st.Problems, "; "); progress != nil && text != "" && text != lastProblems {
			progress(text)
			lastProblems = text
		}
		return st.Ready >= p.Size, nil
	})
	if err != nil && sandbox.IsTimeout(err) && ctx.Err() == nil {
		state := "no member"
		if last != nil {
			state = fmt.Sprintf("%d of %d ready", last.Ready, p.Size)
			if len(last.Problems) > 0 {
				state += ": " + strings.Join(last.Problems, "; ")
			}
		}
		return last, field.WithStep(fmt.Errorf("pool %q in namespace %q was not ready within %s (%s)", p.Name, p.Namespace, timeout, state),
			field.Step{Hint: field.HintWaitPool, Name: p.Name, Namespace: p.Namespace})
	}
	if err != nil && ctx.Err() != nil {
		return last, context.Cause(ctx)
	}
	return last, err
}

func memberStartError(p *Pool, pod *corev1.Pod, err error) error {
	var se *sandbox.StartError
	if errors.As(err, &se) {
		return &memberStartErr{pool: p, pod: pod.Name, start: se}
	}
	return err
}

// memberStartErr: a pool's member cannot start, with the cluster's reason
// and the advice on it, which names fields (a field.Worder).
type memberStartErr struct {
	pool  *Pool
	pod   string
	start *sandbox.StartError
}

func (e *memberStartErr) Error() string { return e.Words(func(f string) string { return f }) }

// Words is the error with name's name for the fields its advice names.
func (e *memberStartErr) Words(name func(field string) string) string {
	msg := fmt.Sprintf("pool %q in namespace %q cannot start its members: %s (pod %s): %s", e.pool.Name, e.pool.Namespace, e.start.Reason, e.pod, e.start.Message)
	if hint := e.start.Hint(name); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// ScalePool sets the pool's size and reconciles it.
func ScalePool(ctx context.Context, cs kubernetes.Interface, namespace, name string, size int, o PoolOptions) (*PoolStatus, error) {
	if err := ValidatePoolSize(size, false); err != nil {
		return nil, err
	}
	p, err := GetPool(ctx, cs, namespace, name)
	if err != nil {
		return nil, err
	}
	patch := fmt.Sprintf(`{"metadata":{"uid":%q,"annotations":{%q:%q}}}`, p.UID, AnnotationPoolSize, strconv.Itoa(size))
	t, err := cs.CoreV1().PodTemplates(namespace).Patch(ctx, PoolTemplateName(name), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("scaling pool %q: %w", name, err)
	}
	if p, err = PoolFromTemplate(t); err != nil {
		return nil, err
	}
	st, err := Reconcile(ctx, cs, p)
	if err != nil || !o.Wait || size == 0 {
		return st, err
	}
	return WaitForPool(ctx, cs, p, o.Timeout, o.Progress)
}

// DeletePool deletes the pool's definition and its warm members. Sandboxes
// claimed from it are not its members any more (a claim drops the
// ownerReference) and are never touched; kept counts them.
func DeletePool(ctx context.Context, cs kubernetes.Interface, namespace, name string) (removed []*corev1.Pod, kept int, err error) {
	p, err := GetPool(ctx, cs, namespace, name)
	if err != nil {
		return nil, 0, err
	}
	// Members first, while the pool's definition still exists, so that
	// they are counted here and not raced by the garbage collector. A
	// member a claim is taking right now: whichever write lands first
	// wins. One made after this list (a claimant's replacement, a
	// concurrent reconcile) is removed by the garbage collector once the
	// definition is gone: its owner is.
	removed, err = deleteWarmMembers(ctx, cs, p)
	if err != nil {
		return removed, 0, fmt.Errorf("deleting the warm sandboxes of pool %q: %w", name, err)
	}
	err = cs.CoreV1().PodTemplates(namespace).Delete(ctx, PoolTemplateName(name), metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: ptr.To(p.UID)},
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return removed, 0, &PoolNotFoundError{Name: name, Namespace: namespace}
	}
	if err != nil {
		return removed, 0, fmt.Errorf("deleting pool %q: %w", name, err)
	}
	if removed == nil {
		removed = []*corev1.Pod{} // the pool itself is gone
	}
	list, lerr := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(name, false)})
	if lerr == nil {
		for i := range list.Items {
			if classify(&list.Items[i], p) == stateClaimed {
				kept++
			}
		}
	}
	return removed, kept, err
}

// deleteWarmMembers deletes every unclaimed member of p (of any generation),
// each only while it is unclaimed.
func deleteWarmMembers(ctx context.Context, cs kubernetes.Interface, p *Pool) ([]*corev1.Pod, error) {
	list, err := cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(p.Name, true)})
	if err != nil {
		return nil, err
	}
	var removed []*corev1.Pod
	var errs []error
	for i := range list.Items {
		pod := &list.Items[i]
		if isMember(pod, p.Name) != nil || pod.DeletionTimestamp != nil {
			continue
		}
		switch err := deleteMember(ctx, cs, pod); {
		case err == nil:
			removed = append(removed, pod)
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// Claimed (or deleted) meanwhile: not ours to remove any more.
		default:
			errs = append(errs, fmt.Errorf("pod %s: %w", pod.Name, err))
		}
	}
	return removed, errors.Join(errs...)
}

// PoolStatuses counts the Pods of each pool, with one LIST per namespace.
func PoolStatuses(ctx context.Context, cs kubernetes.Interface, pools []*Pool) ([]*PoolStatus, error) {
	byNS := map[string][]corev1.Pod{}
	var out []*PoolStatus
	for _, p := range pools {
		pods, ok := byNS[p.Namespace]
		if !ok {
			list, err := cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sandbox.ManagedSelector + "," + sandbox.LabelPool})
			if err != nil {
				return nil, err
			}
			pods = list.Items
			byNS[p.Namespace] = pods
		}
		st := &PoolStatus{Pool: p}
		var starting []*corev1.Pod
		for i := range pods {
			switch classify(&pods[i], p) {
			case stateReady:
				st.Ready++
			case stateStarting:
				starting = append(starting, &pods[i])
			case stateClaimed:
				st.Claimed++
			}
		}
		st.Starting, st.Problems = len(starting), problems(starting)
		out = append(out, st)
	}
	return out, nil
}
