package pool

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// A warm pool member is exactly a cold sandbox — same Pod, same gate, same
// NetworkPolicy owned by it, created by Create — except that it has no name
// yet: it is named by generateName, carries agentkernel/pool=POOL instead of
// a sandbox label, and is owned (not controlled) by its pool's PodTemplate,
// so that deleting the pool lets the garbage collector remove the members
// nobody claimed. A claim (claim.go) gives it a name label and drops that
// ownerReference in one write.

// LabelFence selects a pool member for its NetworkPolicy. Its value is
// random and no claim ever changes it, so the policy selects the Pod
// before, during and after the claim.
const LabelFence = "agentkernel/fence"

// memberShape is what makes a Spec's Pod a warm member of a pool: it is the
// sandbox.Shape Create asks. A value: copying a Spec copies it whole.
type memberShape struct {
	pool       string
	owner      metav1.OwnerReference // the pool's PodTemplate; never a controller
	fence      string
	definition string // the pool's Spec as JSON (AnnotationPoolSpec)
	shard      string // where claims look first (LabelShard)
	// name is a persistent pool's member's name, chosen before its Pod is
	// made: the Pod mounts a workspace of that name (memberworkspace.go).
	// "": the API server names the member (generateName).
	name string
}

// Labels turns a sandbox's labels into a warm member's.
func (m memberShape) Labels(l map[string]string) {
	delete(l, sandbox.LabelSandbox)
	l[sandbox.LabelPool] = m.pool
	l[LabelFence] = m.fence
	if m.shard != "" {
		l[LabelShard] = m.shard
	}
}

// Pod turns a sandbox's Pod into a warm member's.
func (m memberShape) Pod(pod *corev1.Pod) {
	pod.Name, pod.GenerateName = m.name, ""
	if m.name == "" {
		pod.GenerateName = sandbox.PoolMemberPrefix(m.pool)
	}
	pod.OwnerReferences = []metav1.OwnerReference{m.owner}
	pod.Annotations[AnnotationPoolSpec] = m.definition
}

// FenceLabels select the member for its NetworkPolicy: the managed-by
// label and its random fence, which no claim ever changes.
func (m memberShape) FenceLabels() map[string]string {
	return map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy, LabelFence: m.fence}
}

// newFence returns a fresh random LabelFence value.
func newFence() string {
	return "f" + sandbox.RandomHex(8)
}

// memberSpec is the Spec of one new member of a pool defined by def: the
// pool's TTL and idle timeout are the claim's to start, never the warm
// member's (it would expire, or stop for being idle, while it waits).
func memberSpec(def *sandbox.Spec, namespace, pool, definition string, owner metav1.OwnerReference) *sandbox.Spec {
	m := def.Clone()
	m.Name, m.Namespace = "", namespace
	m.TTL, m.IdleTimeout = 0, 0
	m.SecretEnvNames = nil
	shape := memberShape{pool: pool, owner: owner, fence: newFence(), definition: definition, shard: newShard()}
	if m.Workspace != nil {
		shape.name = newMemberName(pool)
		m.Workspace.ClaimName = shape.name
	}
	m.Shape = shape
	return &m
}

// createMember makes one warm member: Create, without waiting.
func createMember(ctx context.Context, cs kubernetes.Interface, m *sandbox.Spec) (*corev1.Pod, error) {
	created, err := sandbox.Create(ctx, cs, m, sandbox.CreateOptions{})
	if err != nil {
		return nil, err
	}
	return created.Pod, nil
}

// isMember returns nil when pod is an unclaimed warm member of pool, or why
// not. Like Ours for a sandbox: labels, name and owners must agree.
func isMember(pod *corev1.Pod, pool string) error {
	l := pod.Labels
	switch {
	case l[sandbox.LabelManagedBy] != sandbox.ManagedBy:
		return fmt.Errorf("it lacks the label %s", sandbox.ManagedSelector)
	case l[sandbox.LabelPool] != pool:
		return fmt.Errorf("its label %s is %q, not %q", sandbox.LabelPool, l[sandbox.LabelPool], pool)
	case l[sandbox.LabelSandbox] != "":
		return fmt.Errorf("it was claimed as sandbox %q", l[sandbox.LabelSandbox])
	case !strings.HasPrefix(pod.Name, sandbox.PoolMemberPrefix(pool)):
		return fmt.Errorf("its name does not start with %q", sandbox.PoolMemberPrefix(pool))
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		return fmt.Errorf("it is controlled by %s %q", ref.Kind, ref.Name)
	}
	return nil
}

// poolOwner returns the member's ownerReference to its pool's PodTemplate.
func poolOwner(pod *corev1.Pod) (metav1.OwnerReference, bool) {
	for _, ref := range pod.OwnerReferences {
		if ref.Kind == "PodTemplate" && ref.APIVersion == "v1" && ref.Name == PoolTemplateName(pod.Labels[sandbox.LabelPool]) {
			return ref, true
		}
	}
	return metav1.OwnerReference{}, false
}

// ownedByPool reports whether a member belongs to this generation of its
// pool (a pool deleted and created again under its name is another one).
func ownedByPool(pod *corev1.Pod, uid types.UID) bool {
	ref, ok := poolOwner(pod)
	return ok && ref.UID == uid
}

// A member describes itself with labels, an ownerReference and an
// annotation, all of which anyone who may create Pods can write. So before
// a claim delivers anything to a member (secrets above all), the member is
// checked against what its pool would make: it must be owned by the pool's
// PodTemplate as it exists now (by UID: a member of an earlier pool of the
// same name is not trusted), have the Pod the pool's definition renders
// (image, command, security contexts, volumes, fence label), and be
// selected by its own NetworkPolicy, owned by it. The member's
// AnnotationPoolSpec is never evidence: the PodTemplate is.

// untrustedMemberError says why a member was not claimed.
type untrustedMemberError struct {
	pool, member, why string
}

func (e *untrustedMemberError) Error() string {
	return fmt.Sprintf("pod %s is not a member pool %q made: %s", e.member, e.pool, e.why)
}

// trustMember returns nil when member is a warm member of p exactly as p
// makes them, or why not. It reads the member's NetworkPolicy (one GET)
// and, in a persistent pool, its workspace (one GET), which it returns.
func trustMember(ctx context.Context, cs kubernetes.Interface, p *Pool, member *corev1.Pod) (*corev1.PersistentVolumeClaim, error) {
	refuse := func(format string, args ...any) (*corev1.PersistentVolumeClaim, error) {
		return nil, &untrustedMemberError{pool: p.Name, member: member.Name, why: fmt.Sprintf(format, args...)}
	}
	if err := isMember(member, p.Name); err != nil {
		return refuse("%v", err)
	}
	if p.UID == "" || !ownedByPool(member, p.UID) {
		return refuse("it is not owned by the PodTemplate %s with UID %s", PoolTemplateName(p.Name), p.UID)
	}
	fence := member.Labels[LabelFence]
	if fence == "" {
		return refuse("it has no %s label", LabelFence)
	}
	want := p.memberSpec()
	shape := want.Shape.(memberShape)
	shape.fence = fence
	if want.Workspace != nil {
		shape.name, want.Workspace.ClaimName = member.Name, member.Name
	}
	want.Shape = shape
	if why := podShapeDiff(want.Pod(), member); why != "" {
		return refuse("%s", why)
	}
	var workspace *corev1.PersistentVolumeClaim
	if want.Workspace != nil {
		var err error
		if workspace, err = trustWorkspace(ctx, cs, p, want, member); err != nil {
			return nil, err
		}
	}
	np := want.NetworkPolicy()
	if np == nil {
		return workspace, nil // an open pool: no policy to check
	}
	got, err := cs.NetworkingV1().NetworkPolicies(member.Namespace).Get(ctx, member.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return refuse("it has no NetworkPolicy")
	}
	if err != nil {
		return nil, fmt.Errorf("reading the NetworkPolicy of pool member %s: %w", member.Name, err)
	}
	if why := policyDiff(np, got, member); why != "" {
		return refuse("its NetworkPolicy %s", why)
	}
	return workspace, nil
}

// podShapeDiff compares the parts of a member Pod that decide what it runs
// and what it may do with what the pool renders; fields the API server or
// admission fill in (defaults, tolerations, the node) are left out.
func podShapeDiff(want, got *corev1.Pod) string {
	w, g := &want.Spec, &got.Spec
	switch {
	case got.Labels[sandbox.LabelManagedBy] != sandbox.ManagedBy || got.Labels[LabelFence] != want.Labels[LabelFence]:
		return "its labels differ"
	case len(g.Containers) != 1 || len(g.InitContainers) != 0 || len(g.EphemeralContainers) != 0:
		return "it has other containers"
	case g.HostNetwork || g.HostPID || g.HostIPC || !ptrEqual(w.HostUsers, g.HostUsers) || !ptrEqual(w.ShareProcessNamespace, g.ShareProcessNamespace):
		return "it shares namespaces the pool's members do not"
	case !apiequality.Semantic.DeepEqual(w.SecurityContext, g.SecurityContext):
		return "its pod security context differs"
	case !apiequality.Semantic.DeepEqual(w.Volumes, g.Volumes):
		return "its volumes differ"
	case !ptrEqual(w.AutomountServiceAccountToken, g.AutomountServiceAccountToken):
		return "it mounts a service account token"
	case serviceAccount(w.ServiceAccountName) != serviceAccount(g.ServiceAccountName):
		return fmt.Sprintf("it runs as service account %q", g.ServiceAccountName)
	case !ptrEqual(w.RuntimeClassName, g.RuntimeClassName):
		return "its runtime class differs"
	}
	wc, gc := &w.Containers[0], &g.Containers[0]
	switch {
	case wc.Name != gc.Name:
		return "its container differs"
	case wc.Image != gc.Image:
		return fmt.Sprintf("it runs image %q, the pool %q", untrusted.Line(gc.Image, 200), wc.Image)
	case wc.ImagePullPolicy != "" && wc.ImagePullPolicy != gc.ImagePullPolicy:
		return "its image pull policy differs"
	case !slices.Equal(wc.Command, gc.Command) || !slices.Equal(wc.Args, gc.Args) || wc.WorkingDir != gc.WorkingDir:
		return "its command differs"
	case !apiequality.Semantic.DeepEqual(wc.SecurityContext, gc.SecurityContext):
		return "its container security context differs"
	case !apiequality.Semantic.DeepEqual(wc.VolumeMounts, gc.VolumeMounts) || len(gc.VolumeDevices) != 0:
		return "its volume mounts differ"
	case !apiequality.Semantic.DeepEqual(wc.Env, gc.Env) || !apiequality.Semantic.DeepEqual(wc.EnvFrom, gc.EnvFrom):
		return "its environment differs"
	case !apiequality.Semantic.DeepEqual(wc.StartupProbe, gc.StartupProbe):
		return "its startup probe differs"
	case !apiequality.Semantic.DeepEqual(wc.Resources, gc.Resources):
		return "its resources differ"
	case !apiequality.Semantic.DeepEqual(wc.Ports, gc.Ports) && (len(wc.Ports) != 0 || len(gc.Ports) != 0):
		return "its ports differ"
	}
	return ""
}

// serviceAccount: the API server gives a Pod without one "default".
func serviceAccount(name string) string {
	if name == "" {
		return "default"
	}
	return name
}

func ptrEqual[T comparable](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// policyDiff compares a member's NetworkPolicy with the one the pool
// renders: owned by the member (UID), selecting it by its fence, with the
// same rules. Egress rules to DNS are left out of the comparison when the
// pool does not pin its DNS servers: each member's come from the cluster
// as it was found when the member was made.
func policyDiff(want, got *networkingv1.NetworkPolicy, member *corev1.Pod) string {
	owner := metav1.GetControllerOfNoCopy(got)
	switch {
	case owner == nil || owner.Kind != "Pod" || owner.UID != member.UID:
		return "is not owned by the member"
	case got.DeletionTimestamp != nil:
		return "is being deleted"
	case len(got.Spec.PodSelector.MatchExpressions) != 0 || !maps.Equal(got.Spec.PodSelector.MatchLabels, want.Spec.PodSelector.MatchLabels):
		return "does not select the member by its fence label"
	case !labels.SelectorFromSet(got.Spec.PodSelector.MatchLabels).Matches(labels.Set(member.Labels)):
		return "does not select the member"
	case !slices.Equal(got.Spec.PolicyTypes, want.Spec.PolicyTypes):
		return "has other policy types"
	case !apiequality.Semantic.DeepEqual(want.Spec.Ingress, got.Spec.Ingress) && len(want.Spec.Ingress)+len(got.Spec.Ingress) != 0:
		return "allows other ingress"
	case !apiequality.Semantic.DeepEqual(withoutDNS(want.Spec.Egress), withoutDNS(got.Spec.Egress)):
		return "allows other egress"
	}
	return ""
}

// withoutDNS drops the egress rules whose ports are all DNS's (53, or
// OpenShift's 5353).
func withoutDNS(rules []networkingv1.NetworkPolicyEgressRule) []networkingv1.NetworkPolicyEgressRule {
	var out []networkingv1.NetworkPolicyEgressRule
	for _, r := range rules {
		dns := len(r.Ports) > 0
		for _, p := range r.Ports {
			if p.Port == nil || (p.Port.IntValue() != 53 && p.Port.IntValue() != 5353) || p.EndPort != nil {
				dns = false
			}
		}
		if !dns {
			out = append(out, r)
		}
	}
	return out
}
