package sandbox

import (
	"strings"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"
)

func validateIdleTimeout(d time.Duration) error {
	if d < 0 || (d > 0 && d < time.Second) {
		return field.Invalid("idleTimeout", "`idleTimeout` must be at least 1s (or 0 for none), not %s", d)
	}
	return nil
}

// StoppedIdle reports whether a finished sandbox stopped itself for being
// idle (--idle-timeout), as opposed to its TTL or anything else.
func StoppedIdle(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; cs.Name == ContainerName && t != nil && t.ExitCode == 0 &&
			strings.HasPrefix(strings.TrimSpace(t.Message), IdleMessagePrefix) {
			return true
		}
	}
	return false
}
