package sandbox

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// AdmissionError: the cluster's admission (a mutating webhook or
// MutatingAdmissionPolicy) changed the sandbox's Pod in ways that weaken
// its hardening, and the spec does not accept that
// (AcceptAdmissionChanges). Create removes what it made before returning
// it; the Pod never ran (it was still behind its scheduling gate).
type AdmissionError struct {
	Namespace, Pod string
	Changes        []AdmissionChange // the weakening ones
	// Unfenced: a change would let the Pod run outside its NetworkPolicy
	// (its scheduling gate or a label the policy selects on removed). No
	// flag accepts that.
	Unfenced bool
}

func (e *AdmissionError) Error() string {
	return e.Words(func(f string) string { return f })
}

// Words names the field that accepts the changes as an edge does.
func (e *AdmissionError) Words(name func(field string) string) string {
	lines := make([]string, len(e.Changes))
	for i, c := range e.Changes {
		lines[i] = c.String()
	}
	next := fmt.Sprintf(", or, if you trust the change, accept it with %s", name("acceptAdmissionChanges"))
	if e.Unfenced {
		next = "; this cannot be accepted: the sandbox would run outside its NetworkPolicy"
	}
	return fmt.Sprintf("the cluster's admission changed the sandbox's Pod %s in namespace %q in ways that weaken its hardening: %s; "+
		"nothing was kept. A mutating webhook or MutatingAdmissionPolicy did it (or an API server older than 1.27 dropped the scheduling gate): "+
		"ask your cluster admin to exclude the label %s=%s (see kubectl get mutatingwebhookconfigurations,mutatingadmissionpolicies)%s",
		e.Pod, e.Namespace, strings.Join(lines, "; "), LabelManagedBy, ManagedBy, next)
}

// admitted compares the Pod asked for with the one the API server
// stored. It records every change on c (for the caller to tell the user)
// and returns an AdmissionError when one weakens the sandbox and the spec
// does not accept that.
func (c *Created) admitted(spec *Spec, asked, stored *corev1.Pod) error {
	changes := AdmissionChanges(asked, stored)
	c.AdmissionChanges = append(c.AdmissionChanges, changes...)
	weak := Weakening(changes)
	unfenced := slices.ContainsFunc(weak, unfences)
	if len(weak) == 0 || spec.AcceptAdmissionChanges && !unfenced {
		return nil
	}
	name := stored.Name
	if name == "" {
		name = stored.GenerateName + "…"
	}
	return &AdmissionError{Namespace: stored.Namespace, Pod: name, Changes: weak, Unfenced: unfenced}
}

// unfences: without its scheduling gate the Pod may run before its
// NetworkPolicy exists; without a label of ours the policy, which selects
// by them, may not select it at all.
func unfences(c AdmissionChange) bool {
	return c.Field == "spec.schedulingGates" || strings.HasPrefix(c.Field, "metadata.labels[agentkernel/")
}

// ungated is pod as it is once Ungate lifted FenceGate: what the update's
// admission is compared with.
func ungated(pod *corev1.Pod) *corev1.Pod {
	p := pod.DeepCopy()
	p.Spec.SchedulingGates = slices.DeleteFunc(p.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == FenceGate })
	return p
}
