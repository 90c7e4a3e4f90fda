package sandbox

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// A sandbox's TTL is its Pod's activeDeadlineSeconds (Spec.TTL): the
// kubelet ends it even if no client ever comes back.

// Expired reports whether the cluster ended the sandbox at its TTL.
func Expired(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodFailed && pod.Status.Reason == "DeadlineExceeded"
}

// ExpiresAt is when the kubelet ends the sandbox (activeDeadlineSeconds
// counts from the Pod's start). ok is false without a deadline; a Pod that
// has not started yet expires a full deadline after now.
func ExpiresAt(pod *corev1.Pod, now time.Time) (at time.Time, ok bool) {
	d := pod.Spec.ActiveDeadlineSeconds
	if d == nil {
		return time.Time{}, false
	}
	start := now
	if pod.Status.StartTime != nil {
		start = pod.Status.StartTime.Time
	}
	return start.Add(time.Duration(*d) * time.Second), true
}
