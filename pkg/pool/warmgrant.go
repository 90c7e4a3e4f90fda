package pool

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// WarmAllowHosts is what the namespace's egress proxy grants a warm member
// nobody has claimed yet: the --allow-host hosts of its pool, so that it
// can install its agent (WarmInstall) from a registry it reaches only
// through the proxy. t is the pool's PodTemplate as the proxy sees it now
// (nil: there is none).
//
// The member's labels, name, owners and annotations are anyone's to write
// who may create Pods, so none of them is the evidence: the member must be
// an unclaimed member of its pool by labels, name and owners as isMember
// has it, owned by that PodTemplate by UID (a member of an earlier pool of
// the same name gets nothing), and carry exactly its pool's grants; the
// hosts returned are the pool's own, read from the PodTemplate. A Pod that
// passes all of this without being made by the pool gains at most what the
// pool's members may reach, and only while the pool exists — less than a
// Pod named as a sandbox could claim for itself. A member holds no
// credentials before its claim (secrets are the claim's).
func WarmAllowHosts(member *corev1.Pod, t *corev1.PodTemplate) ([]string, error) {
	name := member.Labels[sandbox.LabelPool]
	if name == "" || name == sandbox.PoolActive {
		return nil, fmt.Errorf("pod %s is not a member of a pool: its label %s is %q", member.Name, sandbox.LabelPool, name)
	}
	refuse := func(format string, args ...any) ([]string, error) {
		return nil, &untrustedMemberError{pool: name, member: member.Name, why: fmt.Sprintf(format, args...)}
	}
	if err := isMember(member, name); err != nil {
		return refuse("%v", err)
	}
	if t == nil || t.DeletionTimestamp != nil {
		return refuse("the pool has no PodTemplate %s", PoolTemplateName(name))
	}
	p, err := PoolFromTemplate(t)
	if err != nil || p.Name != name {
		return refuse("its PodTemplate %s is not a pool's definition", t.Name)
	}
	if !ownedByPool(member, p.UID) {
		return refuse("it is not owned by the PodTemplate %s with UID %s", t.Name, p.UID)
	}
	if len(p.Spec.AllowHosts) == 0 {
		return refuse("its pool grants no hosts (its `allowHosts` is empty)")
	}
	canonical, err := fence.CanonicalAllowHosts(p.Spec.AllowHosts)
	if err != nil {
		return refuse("the pool's hosts: %v", err)
	}
	got, err := fence.AllowHostsOf(member)
	if err != nil {
		return refuse("%v", err)
	}
	gotStrings := make([]string, len(got))
	for i, r := range got {
		gotStrings[i] = r.String()
	}
	if !slices.Equal(gotStrings, canonical) {
		return refuse("its %s annotation is not its pool's", fence.AnnotationAllowHosts)
	}
	return canonical, nil
}

// SlimPodTemplate keeps of a PodTemplate what WarmAllowHosts reads, for a
// watch that holds every PodTemplate of a namespace.
func SlimPodTemplate(t *corev1.PodTemplate) *corev1.PodTemplate {
	ann := map[string]string{}
	for _, k := range []string{AnnotationPoolSize, AnnotationPoolSpec} {
		if v, ok := t.Annotations[k]; ok {
			ann[k] = v
		}
	}
	return &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{
		Name: t.Name, Namespace: t.Namespace, UID: t.UID, ResourceVersion: t.ResourceVersion,
		Labels: t.Labels, Annotations: ann, DeletionTimestamp: t.DeletionTimestamp,
	}}
}
