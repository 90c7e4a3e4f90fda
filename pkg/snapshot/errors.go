package snapshot

import (
	"fmt"
	"time"
)

// NoSnapshotAPIError: the cluster serves no VolumeSnapshots (the
// snapshot.storage.k8s.io CRDs and controller are not installed).
type NoSnapshotAPIError struct{ Namespace string }

func (e *NoSnapshotAPIError) Error() string {
	return "this cluster serves no CSI volume snapshots (no snapshot.storage.k8s.io/v1 VolumeSnapshot API)"
}

// ExistsError: a VolumeSnapshot of the name is already there.
type ExistsError struct{ Name, Namespace string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("volumesnapshot %q already exists in namespace %q", e.Name, e.Namespace)
}

// NotFoundError: no VolumeSnapshot of the name.
type NotFoundError struct{ Name, Namespace string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("volumesnapshot %q not found in namespace %q", e.Name, e.Namespace)
}

// FailedError: the snapshot controller or the CSI driver said the snapshot
// cannot be taken (no snapshot class for the driver, the driver refused).
type FailedError struct{ Name, Namespace, Message string }

func (e *FailedError) Error() string {
	return fmt.Sprintf("volumesnapshot %q in namespace %q failed: %s", e.Name, e.Namespace, e.Message)
}

// NotReadyError: the snapshot was not ready to use (in Timeout, when the
// wait had one).
type NotReadyError struct {
	Name, Namespace string
	Timeout         time.Duration
	Status          string
}

func (e *NotReadyError) Error() string {
	if e.Timeout > 0 {
		return fmt.Sprintf("volumesnapshot %q in namespace %q was not ready to use within %s: %s", e.Name, e.Namespace, e.Timeout, e.Status)
	}
	return fmt.Sprintf("volumesnapshot %q in namespace %q is not ready to use: %s", e.Name, e.Namespace, e.Status)
}
