package sandbox

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// AnnotationEnd is when a sandbox is to end (RFC 3339), at or before its
// TTL: an end that moves, which the kubelet's activeDeadlineSeconds cannot
// (it only shortens). Whoever sets it enforces it (serve, for its E2B
// timeouts); gc deletes a running sandbox past it too, should its setter
// be gone. A persistent one is left to its setter, whose pause flushes its
// files first, and to its TTL.
const AnnotationEnd = "agentkernel/end"

// EndOf is a sandbox's AnnotationEnd; ok is false without one, or with
// one that is not RFC 3339.
func EndOf(pod *corev1.Pod) (end time.Time, ok bool) {
	v := pod.Annotations[AnnotationEnd]
	if v == "" {
		return time.Time{}, false
	}
	end, err := time.Parse(time.RFC3339, v)
	return end, err == nil
}

// pastEndOf reports whether a disposable sandbox's end has passed.
func pastEndOf(pod *corev1.Pod, now time.Time) bool {
	end, ok := EndOf(pod)
	return ok && !IsPersistent(pod) && !now.Before(end)
}
