package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
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

// memberShape is what makes a Spec's Pod a warm member of a pool.
type memberShape struct {
	pool       string
	owner      metav1.OwnerReference // the pool's PodTemplate; never a controller
	fence      string
	definition string // the pool's Spec as JSON (AnnotationPoolSpec)
}

// memberLabels turns a sandbox's labels into a warm member's.
func (s *Spec) memberLabels(l map[string]string) {
	if s.member == nil {
		return
	}
	delete(l, LabelSandbox)
	l[LabelPool] = s.member.pool
	l[LabelFence] = s.member.fence
}

// shapeMember turns a sandbox's Pod into a warm member's.
func (s *Spec) shapeMember(pod *corev1.Pod) {
	if s.member == nil {
		return
	}
	pod.Name = ""
	pod.GenerateName = PoolMemberPrefix(s.member.pool)
	pod.OwnerReferences = []metav1.OwnerReference{s.member.owner}
	pod.Annotations[AnnotationPoolSpec] = s.member.definition
}

// fenceLabels are what a sandbox's NetworkPolicy selects. A cold sandbox's
// policy also requires agentkernel/pool=active, which no claimed Pod
// carries: while a cold create and a claim of one name race (one of them
// backs off), the cold one's policy must not reach the claimed Pod, whose
// policy may be stricter — NetworkPolicies add up.
func (s *Spec) fenceLabels() map[string]string {
	if s.member != nil {
		return map[string]string{LabelManagedBy: ManagedBy, LabelFence: s.member.fence}
	}
	l := s.SelectorLabels()
	l[LabelPool] = PoolActive
	return l
}

// newFence returns a fresh random LabelFence value.
func newFence() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return "f" + hex.EncodeToString(b)
}

// memberSpec is the Spec of one new member of a pool defined by def: the
// pool's TTL and idle timeout are the claim's to start, never the warm
// member's (it would expire, or stop for being idle, while it waits).
func memberSpec(def *Spec, namespace, pool, definition string, owner metav1.OwnerReference) *Spec {
	m := def.clone()
	m.Name, m.Namespace = "", namespace
	m.TTL, m.IdleTimeout = 0, 0
	m.SecretEnvNames = nil
	m.member = &memberShape{pool: pool, owner: owner, fence: newFence(), definition: definition}
	return &m
}

// createMember makes one warm member: Create, without waiting.
func createMember(ctx context.Context, cs kubernetes.Interface, m *Spec) (*corev1.Pod, error) {
	created, err := Create(ctx, cs, m, CreateOptions{})
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
	case l[LabelManagedBy] != ManagedBy:
		return fmt.Errorf("it lacks the label %s", ManagedSelector)
	case l[LabelPool] != pool:
		return fmt.Errorf("its label %s is %q, not %q", LabelPool, l[LabelPool], pool)
	case l[LabelSandbox] != "":
		return fmt.Errorf("it was claimed as sandbox %q", l[LabelSandbox])
	case !strings.HasPrefix(pod.Name, PoolMemberPrefix(pool)):
		return fmt.Errorf("its name does not start with %q", PoolMemberPrefix(pool))
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		return fmt.Errorf("it is controlled by %s %q", ref.Kind, ref.Name)
	}
	return nil
}

// poolOwner returns the member's ownerReference to its pool's PodTemplate.
func poolOwner(pod *corev1.Pod) (metav1.OwnerReference, bool) {
	for _, ref := range pod.OwnerReferences {
		if ref.Kind == "PodTemplate" && ref.APIVersion == "v1" && ref.Name == PoolTemplateName(pod.Labels[LabelPool]) {
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

// clone copies a Spec deeply enough that changing the copy's maps and
// slices leaves the original alone.
func (s *Spec) clone() Spec {
	c := *s
	c.Env = append([]corev1.EnvVar(nil), s.Env...)
	c.SecretEnvNames = append([]string(nil), s.SecretEnvNames...)
	c.Ports = append([]corev1.ContainerPort(nil), s.Ports...)
	c.Labels = copyMap(s.Labels)
	c.NodeSelector = copyMap(s.NodeSelector)
	c.CPU, c.Memory, c.EphemeralStorage = s.CPU.DeepCopy(), s.Memory.DeepCopy(), s.EphemeralStorage.DeepCopy()
	if s.member != nil {
		m := *s.member
		c.member = &m
	}
	return c
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
