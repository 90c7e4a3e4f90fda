package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
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
	"workspaceSize", "storageClass", "acceptAdmissionChanges",
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
	// A few shards first (see shard.go), then the whole pool.
	var tried []corev1.Pod
	if shard, ok := shardRequirement(p.Size); ok {
		if tried, err = listWarm(ctx, cs, claim.Namespace, o.Pool, shard); err != nil {
			return nil, err
		}
		if a, err := claimAny(ctx, cs, p, tried, claim, o); a != nil || err != nil {
			return a, err
		}
	}
	members, err := listWarm(ctx, cs, claim.Namespace, o.Pool)
	if err != nil {
		return nil, err
	}
	if a, err := claimAny(ctx, cs, p, notTried(members, tried), claim, o); a != nil || err != nil {
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

// listWarm lists the unclaimed members of pool (those that also meet
// also, if any), in random order: claimants that start together then
// mostly try different members first.
func listWarm(ctx context.Context, cs kubernetes.Interface, namespace, pool string, also ...labels.Requirement) ([]corev1.Pod, error) {
	// From the API server's cache, without a quorum read: a stale list
	// costs at most a Conflict, since the claim's write carries the
	// resourceVersion it read.
	list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: poolLabels(pool, true).Add(also...).String(), ResourceVersion: "0"})
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

// notTried is members less those in tried (by UID): a claim's second list
// holds the first's members too, which it already tried.
func notTried(members, tried []corev1.Pod) []corev1.Pod {
	if len(tried) == 0 {
		return members
	}
	seen := make(map[types.UID]bool, len(tried))
	for i := range tried {
		seen[tried[i].UID] = true
	}
	var rest []corev1.Pod
	for i := range members {
		if !seen[members[i].UID] {
			rest = append(rest, members[i])
		}
	}
	return rest
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
	workspace, err := trustMember(ctx, cs, p, member)
	if err != nil {
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
	d.workspace = workspace
	if !d.empty() && o.Exec == nil {
		return nil, fmt.Errorf("claiming with environment, secrets or an idle timeout needs AcquireOptions.Exec")
	}
	var entry keys.Entry
	if len(s.Inject) > 0 {
		// The grant goes on the Pod with the claim; the entry is written
		// only once the member is ours, so a claimant that loses the race
		// never touches the winner's entry.
		if entry, err = s.NewKeyEntry(o.SecretValues); err != nil {
			return nil, err
		}
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
	if workspace != nil {
		s.Workspace.ClaimName = workspace.Name // the member's name, for good
	}
	a := &Acquired{Pod: got, Warm: true, Spec: *s}
	var written *sandbox.KeyEntry
	if len(entry.Credentials) > 0 {
		written, err = sandbox.PutKeyEntry(ctx, cs, got.Namespace, got.Name, entry)
	}
	if err == nil {
		a.Pod, a.Secret, err = finishClaim(ctx, cs, got, s, &d, id, o)
	}
	if err != nil {
		if derr := written.Remove(ctx, cs); derr != nil {
			err = fmt.Errorf("%w; %v", err, derr)
		}
		if derr := deleteClaimed(ctx, cs, got); derr != nil {
			err = fmt.Errorf("%w; %v", err, derr)
		}
		if w := d.workspace; w != nil {
			// Once re-rooted (or if that write's outcome is unknown) it is
			// no longer the Pod's, and would not go with it.
			if derr := deleteClaimedWorkspace(ctx, cs, w); derr != nil {
				err = fmt.Errorf("%w; %v", err, derr)
			}
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

// ClaimedFrom returns the pool a sandbox was claimed from, or "" for one
// created cold.
func ClaimedFrom(pod *corev1.Pod) string {
	if p := pod.Labels[sandbox.LabelPool]; pod.Labels[sandbox.LabelSandbox] != "" && p != sandbox.PoolActive {
		return p
	}
	return ""
}
