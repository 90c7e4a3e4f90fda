package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// A claim takes a warm member out of its pool with ONE write: a JSON merge
// patch of the member's labels, annotations, ownerReferences and (for a
// TTL) activeDeadlineSeconds that carries the resourceVersion the claimant
// read. The API server applies it only if nobody wrote the Pod since, so of
// two claimants of one member exactly one wins; the other gets a Conflict
// and tries the next member. There is no lock, no lease and no controller,
// so claims are race-free across processes and machines alike.

// Annotations a claim puts on the Pod it takes.
const (
	// AnnotationClaim is a random id of the claim, so that a claimant whose
	// write's outcome is unknown (Ctrl-C mid-request) can tell its own.
	AnnotationClaim = "agentkernel/claim"
)

// ClaimFields are the parts of a sandbox's shape that come from its pool:
// a claim may name them (Match) only to insist on the pool's values. They
// are the Spec's fields (the edges name them in their own words: see
// pkg/cmd's field table). "agent" is the preset a pool
// was made from (pool create --agent): a claim that brings a preset's
// credentials and install step must get a sandbox made for that agent.
var ClaimFields = []string{
	"image", "imagePullPolicy", "cpu", "memory", "ephemeralStorage", "profile", "network",
	"readOnlyRoot", "runtimeClassName", "nodeSelector", "serviceAccountName", "ports", "uid", "agent",
}

// PerClaimFields are what a claim brings to the member it takes, without
// starting anything anew: environment and secrets (delivered over exec
// stdin), labels, TTL and idle timeout.
var PerClaimFields = []string{"env", "secretEnvNames", "labels", "ttl", "idleTimeout"}

// AcquireOptions choose how Acquire gets a sandbox.
type AcquireOptions struct {
	// Pool to claim from.
	Pool string
	// Match names the ClaimFields the caller chose explicitly: a pool whose
	// definition differs in any of them is refused. The others are the
	// pool's, whatever the claim's Spec says.
	Match []string
	// WaitForMember waits (up to Timeout) for a member to become ready
	// instead of creating the sandbox cold.
	WaitForMember bool
	// Exec runs commands in a claimed Pod: the claim's environment,
	// secrets and idle timeout are delivered through it. Required when the
	// claim has any of those.
	Exec func(*corev1.Pod) *sandbox.PodExec
	// RefillInBackground returns the claimed sandbox as soon as it is
	// ready, while its replacement in the pool is still being made; the
	// caller must then call Acquired.WaitRefill before it exits (a process
	// that ends first leaves the pool a member short until a pool command
	// tops it up). Otherwise Acquire returns once the replacement exists.
	RefillInBackground bool
	// Admit, if set, sees the sandbox a claim would get (the pool's shape
	// with the claim's own fields) before any member is taken or any Pod
	// made, and refuses it by returning an error: a caller with limits of
	// its own (the MCP server's most open network and biggest resources)
	// keeps them for pools too, whoever defined the pool.
	Admit func(*sandbox.Spec) error
	// CreateOptions apply to a cold create; SecretValues to a claim too.
	sandbox.CreateOptions
}

// Acquired is what Acquire got.
type Acquired struct {
	Pod *corev1.Pod
	// Warm: claimed from the pool. Otherwise the sandbox was created cold,
	// and Why says why ("pool "p" has no ready member (3 starting)").
	Warm bool
	Why  string
	// Spec is the sandbox's shape: the pool's, with the claim's own fields.
	Spec   sandbox.Spec
	Secret *corev1.Secret

	refilled  <-chan error
	refillErr error
}

// WaitRefill waits until the member that replaces the claimed one in its
// pool has been made (see AcquireOptions.RefillInBackground) and returns
// why it could not be, if so: the claim stands either way, and the next
// pool command tops the pool up.
func (a *Acquired) WaitRefill() error {
	if a.refilled != nil {
		a.refillErr, a.refilled = <-a.refilled, nil
	}
	return a.refillErr
}

func (o *AcquireOptions) admit(s *sandbox.Spec) error {
	if o.Admit == nil {
		return nil
	}
	if err := o.Admit(s); err != nil {
		return fmt.Errorf("pool %q in namespace %q: %w", o.Pool, s.Namespace, err)
	}
	return nil
}

// errLost: another claimant (or a delete) got to the member first.
var errLost = errors.New("the member was taken by someone else")

// Acquire gets the sandbox claim.Name: it claims a ready member of pool
// o.Pool, or — when none is ready — waits for one (o.WaitForMember) or
// creates the sandbox cold from the pool's definition, and says which.
//
// claim is the sandbox as the caller would create it: its Name and
// Namespace, its PerClaimFields, and the ClaimFields named in o.Match.
func Acquire(ctx context.Context, cs kubernetes.Interface, claim *sandbox.Spec, o AcquireOptions) (*Acquired, error) {
	if err := ValidatePoolName(o.Pool); err != nil {
		return nil, err
	}
	if err := claim.Validate(); err != nil {
		return nil, err
	}
	for _, f := range o.Match {
		if !slices.Contains(ClaimFields, f) {
			return nil, fmt.Errorf("a claim cannot insist on %q: only on %s", f, strings.Join(ClaimFields, ", "))
		}
	}
	// The pool's definition, read once: what its members must be, and
	// what a claim gets. A member's own description is never trusted.
	p, err := GetPool(ctx, cs, claim.Namespace, o.Pool)
	if err != nil {
		return nil, err
	}
	if err := settleUnfinished(ctx, cs, claim, p); err != nil {
		return nil, err
	}
	members, err := listWarm(ctx, cs, claim.Namespace, o.Pool)
	if err != nil {
		return nil, err
	}
	if a, err := claimAny(ctx, cs, p, members, claim, o); a != nil || err != nil {
		return a, err
	}
	if len(members) > 0 {
		// Every member was taken, or gone with a pool deleted meanwhile:
		// a cold create follows the pool as it is now, if it still is.
		if p, err = GetPool(ctx, cs, claim.Namespace, o.Pool); err != nil {
			return nil, err
		}
	}
	s, err := claimedSpec(p.Name, &p.Spec, claim, o.Match)
	if err != nil {
		return nil, err
	}
	if err := o.admit(s); err != nil {
		return nil, err
	}
	why := noMemberReason(p, members)
	if !o.WaitForMember {
		return createCold(ctx, cs, s, why, o)
	}
	return waitAndClaim(ctx, cs, p, claim, o)
}

// listWarm lists the unclaimed members of pool, in random order: claimants
// that start together then mostly try different members first.
func listWarm(ctx context.Context, cs kubernetes.Interface, namespace, pool string) ([]corev1.Pod, error) {
	// From the API server's cache, without a quorum read: a stale list
	// costs at most a Conflict, since the claim's write carries the
	// resourceVersion it read.
	list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(pool, true), ResourceVersion: "0"})
	if err != nil {
		return nil, err
	}
	items := list.Items[:0]
	for _, p := range list.Items {
		if isMember(&p, pool) == nil && p.DeletionTimestamp == nil {
			items = append(items, p)
		}
	}
	rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	return items, nil
}

// claimAny claims the first ready member it can. It returns nil, nil when
// every one was taken by someone else (or none is ready).
func claimAny(ctx context.Context, cs kubernetes.Interface, p *Pool, members []corev1.Pod, claim *sandbox.Spec, o AcquireOptions) (*Acquired, error) {
	for i := range members {
		m := &members[i]
		if started, err := sandbox.Started(m, ""); !started || err != nil {
			continue
		}
		a, err := claimMember(ctx, cs, p, m, claim, o)
		if errors.Is(err, errLost) || isUntrusted(err) {
			continue
		}
		return a, err
	}
	return nil, nil
}

// isUntrusted: the member is not one its pool made (trustMember); the
// claim leaves it alone and tries the next.
func isUntrusted(err error) bool {
	var u *untrustedMemberError
	return errors.As(err, &u)
}

// claimMember claims one ready member of p; errLost if someone was first,
// an untrustedMemberError if it is not a member p made.
func claimMember(ctx context.Context, cs kubernetes.Interface, p *Pool, member *corev1.Pod, claim *sandbox.Spec, o AcquireOptions) (*Acquired, error) {
	if err := trustMember(ctx, cs, p, member); err != nil {
		return nil, err
	}
	s, err := claimedSpec(p.Name, &p.Spec, claim, o.Match)
	if err != nil {
		return nil, err
	}
	if err := o.admit(s); err != nil {
		return nil, err
	}
	d, err := newDelivery(member, s, claim, o.SecretValues)
	if err != nil {
		return nil, err
	}
	if !d.empty() && o.Exec == nil {
		return nil, fmt.Errorf("claiming with environment, secrets or an idle timeout needs AcquireOptions.Exec")
	}
	id := newFence()
	patch, err := claimPatch(member, s, claim, d, id, time.Now())
	if err != nil {
		return nil, err
	}
	got, err := cs.CoreV1().Pods(member.Namespace).Patch(ctx, member.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		return nil, errLost
	case err != nil && ctx.Err() != nil:
		// The write may have landed after all: if it did, undo it.
		if uerr := undoClaim(ctx, cs, member, id); uerr != nil {
			return nil, field.Also(context.Cause(ctx), uerr)
		}
		return nil, context.Cause(ctx)
	case err != nil:
		return nil, fmt.Errorf("claiming pool member %s: %w", member.Name, err)
	}

	// The member is ours. Its replacement is made while the claim is
	// finished, on the cleanup context: keeping the pool whole is part of
	// tidying up, and goes on after a first Ctrl-C.
	refilled := make(chan error, 1)
	go func() {
		refilled <- refill(ctx, cs, member)
	}()
	a := &Acquired{Pod: got, Warm: true, Spec: *s}
	a.Pod, a.Secret, err = finishClaim(ctx, cs, got, s, d, id, o)
	if err != nil {
		if derr := deleteClaimed(ctx, cs, got); derr != nil {
			err = fmt.Errorf("%w; %v", err, derr)
		}
		// The replacement is made whatever happens to this claim.
		if rerr := <-refilled; rerr != nil {
			err = field.Also(err, rerr)
		}
		return nil, err
	}
	a.refilled = refilled
	if !o.RefillInBackground {
		_ = a.WaitRefill() // kept for the caller in a.refillErr
	}
	return a, nil
}

// claimedSpec is the sandbox a claim of a pool defined by def gets: the
// pool's shape, with the claim's name and PerClaimFields. A claim that
// insists (match) on a field the pool has otherwise is refused.
func claimedSpec(pool string, def, claim *sandbox.Spec, match []string) (*sandbox.Spec, error) {
	var diffs, fields []string
	for _, f := range match {
		if d := differs(f, def, claim); d != "" {
			diffs = append(diffs, d)
			fields = append(fields, f)
		}
	}
	if len(diffs) > 0 {
		// A field.Error, so that each edge names the fields its own way.
		fe := field.Invalid(fields[0], "pool %q in namespace %q does not match this claim: %s; leave these out to take the pool's, or use a pool (or a cold create) that has them",
			pool, claim.Namespace, strings.Join(diffs, "; "))
		if slices.Contains(fields, "agent") && claim.Agent != "" {
			fe.Step = field.Step{Hint: field.HintPoolForAgent, Value: claim.Agent}
		}
		return nil, fe
	}
	s := def.Clone()
	s.Shape = nil
	s.Name, s.Namespace = claim.Name, claim.Namespace
	for _, e := range claim.Env {
		s.Env = sandbox.SetEnv(s.Env, e)
	}
	s.SecretEnvNames = append([]string(nil), claim.SecretEnvNames...)
	if len(claim.Labels) > 0 && s.Labels == nil {
		s.Labels = map[string]string{}
	}
	for k, v := range claim.Labels {
		s.Labels[k] = v
	}
	if claim.TTL > 0 {
		s.TTL = claim.TTL
	}
	if claim.IdleTimeout > 0 {
		s.IdleTimeout = claim.IdleTimeout
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// differs says how a claim's field differs from the pool's, or "".
func differs(field string, pool, claim *sandbox.Spec) string {
	var a, b any
	switch field {
	case "image":
		a, b = pool.Image, claim.Image
	case "imagePullPolicy":
		a, b = pool.ImagePullPolicy, claim.ImagePullPolicy
	case "cpu":
		if pool.CPU.Cmp(claim.CPU) == 0 {
			return ""
		}
		a, b = quantity(pool.CPU.String()), quantity(claim.CPU.String())
	case "memory":
		if pool.Memory.Cmp(claim.Memory) == 0 {
			return ""
		}
		a, b = quantity(pool.Memory.String()), quantity(claim.Memory.String())
	case "ephemeralStorage":
		if pool.EphemeralStorage.Cmp(claim.EphemeralStorage) == 0 {
			return ""
		}
		a, b = quantity(pool.EphemeralStorage.String()), quantity(claim.EphemeralStorage.String())
	case "profile":
		a, b = pool.Profile, claim.Profile
	case "network":
		// The same mode is not the same reach: a pool made with
		// allowEgress 10.0.0.0/8 is no network "egress" (public only).
		for _, e := range sandbox.Within(claim, pool) {
			if e.Field == "allowEgress" {
				return fmt.Sprintf("`network`: the pool's sandboxes may reach %s, beyond the claim's `network` %s (%s)", e.Asked, claim.Network, e.Ceiling)
			}
		}
		a, b = pool.Network, claim.Network
	case "readOnlyRoot":
		a, b = pool.ReadOnlyRoot, claim.ReadOnlyRoot
	case "runtimeClassName":
		a, b = pool.RuntimeClassName, claim.RuntimeClassName
	case "nodeSelector":
		if len(pool.NodeSelector) == 0 && len(claim.NodeSelector) == 0 {
			return ""
		}
		a, b = pool.NodeSelector, claim.NodeSelector
	case "serviceAccountName":
		a, b = pool.ServiceAccountName, claim.ServiceAccountName
	case "ports":
		if len(pool.Ports) == 0 && len(claim.Ports) == 0 {
			return ""
		}
		a, b = pool.Ports, claim.Ports
	case "uid":
		a, b = pool.UID, claim.UID
	case "agent":
		a, b = pool.Agent, claim.Agent
	}
	if reflect.DeepEqual(a, b) {
		return ""
	}
	d := fmt.Sprintf("`%s`: the pool has %s, the claim asks for %s", field, show(a), show(b))
	if field == "agent" && claim.Agent != "" {
		d += "`step`" // the edge's words for HintPoolForAgent
	}
	return d
}

// quantity is shown unquoted.
type quantity string

func show(v any) string {
	switch v := v.(type) {
	case quantity:
		return string(v)
	case string:
		if v == "" {
			return "none"
		}
		return fmt.Sprintf("%q", v)
	case []corev1.ContainerPort:
		var ps []string
		for _, p := range v {
			ps = append(ps, fmt.Sprintf("%d/%s", p.ContainerPort, strings.ToLower(string(p.Protocol))))
		}
		return strings.Join(ps, ",")
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.String:
		return show(reflect.ValueOf(v).String())
	case reflect.Map:
		if reflect.ValueOf(v).Len() == 0 {
			return "none"
		}
	}
	return fmt.Sprint(v)
}

// claimPatch is the one write of a claim.
func claimPatch(member *corev1.Pod, s, claim *sandbox.Spec, d delivery, id string, now time.Time) ([]byte, error) {
	lbls := map[string]string{sandbox.LabelSandbox: s.Name}
	for k, v := range claim.Labels {
		lbls[k] = v
	}
	ann := map[string]any{AnnotationClaim: id}
	if !d.empty() {
		// Not whole until the delivery says so (claimstate.go).
		ann[sandbox.AnnotationClaimState] = sandbox.ClaimPending
		ann[sandbox.AnnotationClaimedAt] = now.UTC().Format(time.RFC3339)
	}
	if d.file != "" {
		ann[sandbox.AnnotationEnvFile] = d.file
	}
	if s.IdleTimeout > 0 {
		ann[sandbox.AnnotationIdleTimeout] = s.IdleTimeout.String()
	}
	meta := map[string]any{
		"resourceVersion": member.ResourceVersion, // the precondition: no one wrote it since we read it
		"labels":          lbls,
		"annotations":     ann,
		"ownerReferences": nil, // out of the pool: pool delete and the GC leave it alone
	}
	patch := map[string]any{"metadata": meta}
	if s.TTL > 0 {
		ann[sandbox.AnnotationTTL] = s.TTL.String()
		if d := claimDeadline(member, s.TTL, now); d != nil {
			patch["spec"] = map[string]any{"activeDeadlineSeconds": *d}
		}
	}
	return json.Marshal(patch)
}

// claimDeadline is the activeDeadlineSeconds that ends a claimed member ttl
// from now. The kubelet counts it from the Pod's start, so the time the
// member waited warm is added; a running Pod accepts a deadline only where
// it has none or a later one (nil: keep the one it has).
func claimDeadline(member *corev1.Pod, ttl time.Duration, now time.Time) *int64 {
	waited := time.Duration(0)
	if st := member.Status.StartTime; st != nil && now.After(st.Time) {
		waited = now.Sub(st.Time)
	}
	d := int64(math.Ceil((waited + ttl).Seconds()))
	if old := member.Spec.ActiveDeadlineSeconds; old != nil && *old <= d {
		return nil
	}
	return &d
}

// finishClaim makes a claimed member the sandbox s: it backs off if the
// name is held by another sandbox, creates the claim's Secret (owned by the
// Pod, so delete removes it), and delivers the claim's environment and idle
// timeout over exec stdin, then marks the claim complete. It returns the
// Pod as it is then.
func finishClaim(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, s *sandbox.Spec, d delivery, id string, o AcquireOptions) (*corev1.Pod, *corev1.Secret, error) {
	// A cold create or another claim of this name may have won meanwhile;
	// of two that see each other both back off, and never both stay.
	if err := sandbox.NameHeldElsewhere(ctx, cs, s, pod.UID); err != nil {
		return nil, nil, err
	}
	var secret *corev1.Secret
	if sec := s.Secret(o.SecretValues); sec != nil {
		sec.Name = pod.Name + "-env"
		sec.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, Controller: ptr.To(true)}}
		got, err := sandbox.CreateOwnedSecret(ctx, cs, pod, sec)
		if err != nil {
			return nil, nil, fmt.Errorf("creating the claim's secret: %w", err)
		}
		secret = got
	}
	if d.empty() {
		return pod, secret, nil
	}
	ex := o.Exec(pod).Delivering()
	var stdin io.Reader
	if d.file != "" {
		stdin = bytes.NewReader(d.content)
	}
	var stderr untrusted.Buffer
	if err := ex.Run(ctx, deliverCommand(d.file, d.idle), stdin, nil, &stderr); err != nil {
		if ctx.Err() != nil {
			return nil, secret, context.Cause(ctx)
		}
		// The member's stderr is the sandbox's text: one short line of it.
		return nil, secret, fmt.Errorf("delivering the claim's environment into sandbox %q failed: %v; the sandbox said: %q", s.Name, err, untrusted.Line(stderr.String(), 200))
	}
	done, err := completeClaim(ctx, cs, pod, id)
	if err != nil {
		if ctx.Err() != nil {
			return nil, secret, context.Cause(ctx)
		}
		return nil, secret, err
	}
	return done, secret, nil
}

// delivery is what a claim writes into the sandbox it takes.
type delivery struct {
	file    string // the environment file, "" for none
	content []byte // its content: secrets among it
	idle    int64  // seconds, 0 for none
}

func (d delivery) empty() bool { return d.file == "" && d.idle == 0 }

// newDelivery prepares it before the claim is written, so that bad input
// fails before a member is taken.
func newDelivery(member *corev1.Pod, s, claim *sandbox.Spec, values map[string]string) (delivery, error) {
	d := delivery{idle: sandbox.IdleSeconds(s.IdleTimeout)}
	if len(claim.Env) == 0 && len(claim.SecretEnvNames) == 0 {
		return d, nil
	}
	content, err := envFileContent(claim.Env, claim.SecretEnvNames, values)
	if err != nil {
		return d, err
	}
	d.file, d.content = sandbox.EnvFilePath(member.Name), content
	return d, nil
}

// refill creates the member that replaces a claimed one, from the pool's
// definition as its PodTemplate has it now (not as the member's annotation
// says: whoever may patch Pods must not choose what a claimant creates).
// A pool that was deleted, or deleted and made again (another UID), gets
// no replacement from this claim. If the pool is deleted just after this
// looked, the garbage collector removes the new member: its owner is gone.
func refill(ctx context.Context, cs kubernetes.Interface, claimed *corev1.Pod) error {
	owner, ok := poolOwner(claimed)
	if !ok {
		return fmt.Errorf("pool member %s has no owner pool to refill", claimed.Name)
	}
	cctx, cancel := sandbox.CleanupContext(ctx)
	defer cancel()
	name := claimed.Labels[sandbox.LabelPool]
	p, err := GetPool(cctx, cs, claimed.Namespace, name)
	var gone *PoolNotFoundError
	switch {
	case errors.As(err, &gone):
		return nil
	case err != nil:
		return topUp(fmt.Errorf("refilling pool %q: %w", name, err), claimed.Namespace)
	case p.UID != owner.UID:
		return nil
	}
	if _, err := createMember(cctx, cs, p.memberSpec()); err != nil {
		return topUp(fmt.Errorf("refilling pool %q: %w", name, err), claimed.Namespace)
	}
	return nil
}

// topUp is err, a failed refill, naming how to top the pools in namespace
// up.
func topUp(err error, namespace string) error {
	return field.WithStep(err, field.Step{Hint: field.HintTopUp, Namespace: namespace})
}

// deleteClaimed removes a member this claim took but could not finish.
// Nothing of it may go back to the pool: secrets may already be inside.
func deleteClaimed(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) error {
	cctx, cancel := sandbox.CleanupContext(ctx)
	defer cancel()
	err := cs.CoreV1().Pods(pod.Namespace).Delete(cctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: ptr.To(pod.UID)},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cleaning up failed; left behind in namespace %q: pod/%s (remove with: kubectl delete pod -n %s %s): %v",
			pod.Namespace, pod.Name, pod.Namespace, pod.Name, err)
	}
	return nil
}

// undoClaim deletes member if this claim's write (id) landed on it.
func undoClaim(ctx context.Context, cs kubernetes.Interface, member *corev1.Pod, id string) error {
	cctx, cancel := sandbox.CleanupContext(ctx)
	defer cancel()
	got, err := cs.CoreV1().Pods(member.Namespace).Get(cctx, member.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return field.WithStep(fmt.Errorf("cannot tell whether pool member %s was claimed before the interrupt: %v", member.Name, err),
			field.Step{Hint: field.HintCheckMember, Name: member.Name, Namespace: member.Namespace})
	}
	if got.UID != member.UID || got.Annotations[AnnotationClaim] != id {
		return nil
	}
	if err := deleteClaimed(ctx, cs, got); err != nil {
		return err
	}
	// It was claimed: someone must make its replacement.
	_ = refill(ctx, cs, member)
	return nil
}

// createCold creates the claim's sandbox cold, from the pool's definition.
func createCold(ctx context.Context, cs kubernetes.Interface, s *sandbox.Spec, why string, o AcquireOptions) (*Acquired, error) {
	created, err := sandbox.Create(ctx, cs, s, o.CreateOptions)
	if err != nil {
		if ctx.Err() != nil || o.ServerDryRun {
			return nil, err
		}
		return nil, &ColdError{Why: why, Err: err}
	}
	return &Acquired{Pod: created.Pod, Why: why, Spec: *s, Secret: created.Secret}, nil
}

// ColdError: a claim found no ready member, and the cold create it fell
// back to failed. Both halves are said: the pool's trouble (say, members
// stuck on ErrImagePull) is usually the cold create's too.
type ColdError struct {
	Why string
	Err error
}

func (e *ColdError) Error() string {
	return fmt.Sprintf("%s, and creating the sandbox cold failed: %v", e.Why, e.Err)
}

func (e *ColdError) Unwrap() error { return e.Err }

// noMemberReason says why a claim found no ready member.
func noMemberReason(p *Pool, members []corev1.Pod) string {
	if p.Size == 0 {
		return fmt.Sprintf("pool %q has size 0", p.Name)
	}
	var starting []*corev1.Pod
	for i := range members {
		if ownedByPool(&members[i], p.UID) {
			starting = append(starting, &members[i])
		}
	}
	why := fmt.Sprintf("pool %q has no ready member", p.Name)
	switch {
	case len(starting) == 0:
		why += " (all claimed)"
	default:
		why += fmt.Sprintf(" (%d starting", len(starting))
		if ps := problems(starting); len(ps) > 0 {
			why += ": " + strings.Join(ps, "; ")
		}
		why += ")"
	}
	return why
}

// waitAndClaim waits for a member to become ready and claims it, until
// o.Timeout. It tops the pool up first: with no controller, a pool that
// lost a member (a claimant that died before refilling) would never get
// one back while everybody waits.
func waitAndClaim(ctx context.Context, cs kubernetes.Interface, p *Pool, claim *sandbox.Spec, o AcquireOptions) (*Acquired, error) {
	if p.Size == 0 {
		return nil, field.WithStep(fmt.Errorf("pool %q in namespace %q has size 0: nothing to wait for", p.Name, p.Namespace),
			field.Step{Hint: field.HintScalePool, Name: p.Name, Namespace: p.Namespace})
	}
	if _, err := Reconcile(ctx, cs, p); err != nil && ctx.Err() == nil {
		return nil, err
	}
	var got *Acquired
	lastProblems := ""
	err := watchPool(ctx, cs, p, o.Timeout, func(pods map[types.UID]*corev1.Pod) (bool, error) {
		var ready, starting []*corev1.Pod
		for _, pod := range pods {
			switch classify(pod, p) {
			case stateReady:
				ready = append(ready, pod)
			case stateStarting:
				if _, err := sandbox.Started(pod, ""); err != nil {
					return false, memberStartError(p, pod, err)
				}
				starting = append(starting, pod)
			}
		}
		for _, m := range ready {
			a, err := claimMember(ctx, cs, p, m, claim, o)
			if errors.Is(err, errLost) || isUntrusted(err) {
				continue
			}
			got = a
			return true, err
		}
		if text := strings.Join(problems(starting), "; "); o.Progress != nil && text != "" && text != lastProblems {
			o.Progress(text)
			lastProblems = text
		}
		return false, nil
	})
	switch {
	case err == nil:
		return got, nil
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case sandbox.IsTimeout(err):
		return nil, field.WithStep(fmt.Errorf("no member of pool %q in namespace %q became ready within %s", p.Name, p.Namespace, o.Timeout),
			field.Step{Hint: field.HintWaitClaim, Name: p.Name, Namespace: p.Namespace})
	}
	return nil, err
}

// ClaimedFrom returns the pool a sandbox was claimed from, or "" for one
// created cold.
func ClaimedFrom(pod *corev1.Pod) string {
	if p := pod.Labels[sandbox.LabelPool]; pod.Labels[sandbox.LabelSandbox] != "" && p != sandbox.PoolActive {
		return p
	}
	return ""
}

// ClaimedSpec is the sandbox a claim of pool p gets (see Acquire): what
// `create --pool --dry-run` shows.
func ClaimedSpec(p *Pool, claim *sandbox.Spec, match []string) (*sandbox.Spec, error) {
	return claimedSpec(p.Name, &p.Spec, claim, match)
}
