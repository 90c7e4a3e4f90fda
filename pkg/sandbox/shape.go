package sandbox

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// Shape makes a Spec's objects something other than a sandbox of its own;
// package pool uses it for a pool's warm members, which have no sandbox
// name until a claim gives them one. Create asks it how to name, label and
// own the Pod, and what the NetworkPolicy selects; everything else — the
// hardening, the scheduling gate, the policy owned by the Pod — stays
// Create's. A Spec with a Shape holds no sandbox name, so Create neither
// refuses a taken name for it nor backs off from one. A Shape must be a
// value that a copy of the Spec may share: Clone does not copy it.
type Shape interface {
	// Labels changes the labels every object of the sandbox carries.
	Labels(labels map[string]string)
	// Pod changes the rendered Pod: its name (or generateName), owners
	// and annotations.
	Pod(pod *corev1.Pod)
	// FenceLabels are what the sandbox's NetworkPolicy selects: labels
	// the Pod carries from its creation on and that nothing changes.
	FenceLabels() map[string]string
}

// fenceLabels are what a sandbox's NetworkPolicy selects (a Shape's, if it
// has one). A cold sandbox's
// policy also requires agentkernel/pool=active, which no claimed Pod
// carries: while a cold create and a claim of one name race (one of them
// backs off), the cold one's policy must not reach the claimed Pod, whose
// policy may be stricter — NetworkPolicies add up.
func (s *Spec) fenceLabels() map[string]string {
	if s.Shape != nil {
		return s.Shape.FenceLabels()
	}
	l := s.SelectorLabels()
	l[LabelPool] = PoolActive
	return l
}

// Clone copies a Spec deeply enough that changing the copy's maps and
// slices leaves the original alone.
func (s *Spec) Clone() Spec {
	c := *s
	c.Env = append([]corev1.EnvVar(nil), s.Env...)
	c.SecretEnvNames = append([]string(nil), s.SecretEnvNames...)
	c.Inject = slices.Clone(s.Inject)
	c.Ports = append([]corev1.ContainerPort(nil), s.Ports...)
	c.Labels = copyMap(s.Labels)
	c.NodeSelector = copyMap(s.NodeSelector)
	c.CPU, c.Memory, c.EphemeralStorage = s.CPU.DeepCopy(), s.Memory.DeepCopy(), s.EphemeralStorage.DeepCopy()
	if s.Workspace != nil {
		w := *s.Workspace
		w.Size = s.Workspace.Size.DeepCopy()
		c.Workspace = &w
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
