package sandbox

import (
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
