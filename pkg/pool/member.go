package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
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

// memberShape is what makes a Spec's Pod a warm member of a pool: it is the
// sandbox.Shape Create asks. A value: copying a Spec copies it whole.
type memberShape struct {
	pool       string
	owner      metav1.OwnerReference // the pool's PodTemplate; never a controller
	fence      string
	definition string // the pool's Spec as JSON (AnnotationPoolSpec)
}

// Labels turns a sandbox's labels into a warm member's.
func (m memberShape) Labels(l map[string]string) {
	delete(l, sandbox.LabelSandbox)
	l[sandbox.LabelPool] = m.pool
	l[LabelFence] = m.fence
}

// Pod turns a sandbox's Pod into a warm member's.
func (m memberShape) Pod(pod *corev1.Pod) {
	pod.Name = ""
	pod.GenerateName = sandbox.PoolMemberPrefix(m.pool)
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
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return "f" + hex.EncodeToString(b)
}

// memberSpec is the Spec of one new member of a pool defined by def: the
// pool's TTL and idle timeout are the claim's to start, never the warm
// member's (it would expire, or stop for being idle, while it waits).
func memberSpec(def *sandbox.Spec, namespace, pool, definition string, owner metav1.OwnerReference) *sandbox.Spec {
	m := def.Clone()
	m.Name, m.Namespace = "", namespace
	m.TTL, m.IdleTimeout = 0, 0
	m.SecretEnvNames = nil
	m.Shape = memberShape{pool: pool, owner: owner, fence: newFence(), definition: definition}
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
