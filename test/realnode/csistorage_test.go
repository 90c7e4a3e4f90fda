package realnode

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// The guest's CSI storage (Options.CSI): the suite boots with it, and a
// test that needs a dynamic provisioner or CSI snapshots asks csiStorage
// for the classes.

const (
	csiStorageClass  = "agentkernel-csi"
	csiSnapshotClass = "agentkernel-csi"
	// csiRegisterTimeout: the kubelet registers the driver once it and the
	// driver are up, seconds after boot even under TCG.
	csiRegisterTimeout = 3 * time.Minute
)

var (
	volumeSnapshots        = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshots"}
	volumeSnapshotContents = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotcontents"}
	volumeSnapshotClasses  = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotclasses"}
)

var csiSetup struct {
	once    sync.Once
	dynamic dynamic.Interface
	err     error
}

// csiStorage makes, once per suite, the CSIDriver, the StorageClass
// (WaitForFirstConsumer, no expansion) and the default VolumeSnapshotClass
// (deletionPolicy Delete) of the guest's test driver, waits until the
// kubelet has registered the driver, and returns the two class names.
// Existing objects of those names are kept: it is safe to call from every
// test.
func (s *suite) csiStorage(ctx context.Context, t *testing.T) (storageClass, snapshotClass string) {
	t.Helper()
	csiSetup.once.Do(func() { csiSetup.dynamic, csiSetup.err = s.makeCSIStorage(ctx) })
	if csiSetup.err != nil {
		t.Fatalf("CSI storage in the guest: %v\n%s", csiSetup.err, s.node.Diagnostics())
	}
	return csiStorageClass, csiSnapshotClass
}

func (s *suite) makeCSIStorage(ctx context.Context) (dynamic.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.cluster.AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	// fsGroupPolicy File: the kubelet gives a volume to the Pod's fsGroup,
	// as sandboxes run as non-root. No attach step, no Pod info on mount.
	driver := &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: CSIDriverName},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       ptr.To(false),
			PodInfoOnMount:       ptr.To(false),
			FSGroupPolicy:        ptr.To(storagev1.FileFSGroupPolicy),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent},
		},
	}
	if _, err := s.client.StorageV1().CSIDrivers().Create(ctx, driver, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create the CSIDriver: %w", err)
	}
	class := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: csiStorageClass},
		Provisioner:          CSIDriverName,
		ReclaimPolicy:        ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode:    ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		AllowVolumeExpansion: ptr.To(false),
	}
	if _, err := s.client.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create the StorageClass: %w", err)
	}
	snapClass := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "snapshot.storage.k8s.io/v1",
		"kind":       "VolumeSnapshotClass",
		"metadata": map[string]any{
			"name":        csiSnapshotClass,
			"annotations": map[string]any{"snapshot.storage.kubernetes.io/is-default-class": "true"},
		},
		"driver":         CSIDriverName,
		"deletionPolicy": "Delete",
	}}
	if _, err := dyn.Resource(volumeSnapshotClasses).Create(ctx, snapClass, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create the VolumeSnapshotClass: %w", err)
	}
	// The kubelet lists a registered driver in the node's CSINode.
	err = poll(ctx, csiRegisterTimeout, func() (bool, error) {
		if err := s.guestStopped(); err != nil {
			return false, err
		}
		n, err := s.client.StorageV1().CSINodes().Get(ctx, s.node.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return slices.ContainsFunc(n.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == CSIDriverName }), nil
	})
	if err != nil {
		return nil, fmt.Errorf("the kubelet did not register driver %s in CSINode %s: %w (csi.log says why)", CSIDriverName, s.node.Name, err)
	}
	return dyn, nil
}
