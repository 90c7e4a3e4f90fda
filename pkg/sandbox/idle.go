package sandbox

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// RunDir is a small memory-backed emptyDir in every sandbox: where a claim
// puts the environment it brings (claimenv.go) and where PID 1 finds an idle
// timeout set after the Pod started. Memory-backed, so nothing written
// there ever reaches the node's disk; a read-only root leaves it writable.
const RunDir = "/run/agentkernel"

const runVolume = "agentkernel-run"

// runDirSize holds a Secret's worth of environment (1 MiB) with room for
// quoting. It counts against the sandbox's memory only as far as it is used.
var runDirSize = resource.MustParse("2Mi")

func runDirVolume() corev1.Volume {
	return corev1.Volume{
		Name: runVolume,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium:    corev1.StorageMediumMemory,
			SizeLimit: ptr.To(runDirSize.DeepCopy()),
		}},
	}
}

func validateIdleTimeout(d time.Duration) error {
	if d < 0 || (d > 0 && d < time.Second) {
		return fmt.Errorf("--idle-timeout must be at least 1s (or 0 for none), not %s", d)
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
