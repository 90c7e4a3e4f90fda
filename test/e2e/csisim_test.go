package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// The local control plane has no storage: its PV controller is real, but
// no CSI driver, external provisioner or snapshot controller runs. For the
// plugin's CSI paths (snapshot NAME, create --from SNAPSHOT, a clone) the
// tests play the two controllers a CSI cluster runs, and nothing else:
//
//   - the external provisioner of StorageClass csiClass: for each claim the
//     PV controller hands to it (annotated with the provisioner's name,
//     which the PV controller does), a PersistentVolume bound to the claim,
//     which the PV controller then binds. It records the claim's
//     dataSource on the volume, so tests can see what the plugin asked for;
//   - the snapshot controller: each new VolumeSnapshot of a claim becomes
//     ready to use, with the claim's size; one asking for the class
//     csiMissingClass fails as a snapshot of a missing class does; one
//     named pending-… is left alone.
//
// The simulated node mounts nothing, so no data moves: the real CSI
// driver, provisioner and snapshotter run in the real-node guest
// (test/realnode), where the files are checked.
const (
	csiClass        = "e2e-csi"
	csiDriver       = "csi.e2e.agentkernel.test"
	csiMissingClass = "e2e-missing"
	// annotationDataSource on a simulated volume: kind/name of its claim's
	// dataSource.
	annotationDataSource = "e2e.agentkernel/data-source"
)

var csiSim struct {
	sync.Mutex
	started bool
	snaps   snapclient.Interface
}

// simulateCSI starts the simulated provisioner and snapshot controller once
// per run (they serve every namespace until the test binary ends), with
// the snapshot API, the StorageClass and the CSIDriver they stand for.
func simulateCSI(t *testing.T) snapclient.Interface {
	t.Helper()
	installSnapshotCRDs(t)
	csiSim.Lock()
	defer csiSim.Unlock()
	if csiSim.started {
		return csiSim.snaps
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	class := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: csiClass},
		Provisioner:       csiDriver,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingImmediate),
	}
	if _, err := env.cs.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	driver := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: csiDriver}, Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(false)}}
	if _, err := env.cs.StorageV1().CSIDrivers().Create(ctx, driver, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	go func() {
		for {
			provisionPending(ctx)
			deleteReleased(ctx)
			readySnapshots(ctx, snaps)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	csiSim.started, csiSim.snaps = true, snaps
	return snaps
}

// provisionPending makes a volume for each claim handed to the simulated
// driver that has none yet.
func provisionPending(ctx context.Context) {
	claims, err := env.cs.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, c := range claims.Items {
		if c.Annotations["volume.kubernetes.io/storage-provisioner"] != csiDriver || c.Spec.VolumeName != "" || c.Status.Phase != corev1.ClaimPending || c.DeletionTimestamp != nil {
			continue
		}
		source := ""
		if ds := c.Spec.DataSource; ds != nil {
			source = ds.Kind + "/" + ds.Name
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{
				Name:        "pvc-" + string(c.UID),
				Labels:      map[string]string{"e2e.agentkernel/test": "true"},
				Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": csiDriver, annotationDataSource: source},
			},
			Spec: corev1.PersistentVolumeSpec{
				StorageClassName:              csiClass,
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: c.Spec.Resources.Requests[corev1.ResourceStorage]},
				AccessModes:                   c.Spec.AccessModes,
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: c.Namespace, Name: c.Name, UID: c.UID},
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
					Driver: csiDriver, VolumeHandle: string(c.UID),
				}},
			},
		}
		_, _ = env.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	}
}

// deleteReleased deletes the simulated driver's volumes whose claims are
// gone, as the external provisioner does for the reclaim policy Delete.
func deleteReleased(ctx context.Context) {
	pvs, err := env.cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, pv := range pvs.Items {
		if pv.Annotations["pv.kubernetes.io/provisioned-by"] == csiDriver && pv.Status.Phase == corev1.VolumeReleased {
			_ = env.cs.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
		}
	}
}

// readySnapshots answers each new VolumeSnapshot.
func readySnapshots(ctx context.Context, snaps snapclient.Interface) {
	list, err := snaps.SnapshotV1().VolumeSnapshots("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, vs := range list.Items {
		if vs.Status != nil || strings.HasPrefix(vs.Name, "pending-") || vs.Spec.Source.PersistentVolumeClaimName == nil {
			continue
		}
		if c := vs.Spec.VolumeSnapshotClassName; c != nil && *c == csiMissingClass {
			vs.Status = &snapv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false), Error: &snapv1.VolumeSnapshotError{
				Message: ptr.To(`Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io "` + csiMissingClass + `" not found`),
			}}
		} else {
			claim, err := env.cs.CoreV1().PersistentVolumeClaims(vs.Namespace).Get(ctx, *vs.Spec.Source.PersistentVolumeClaimName, metav1.GetOptions{})
			if err != nil {
				continue
			}
			size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
			vs.Status = &snapv1.VolumeSnapshotStatus{
				ReadyToUse: ptr.To(true), RestoreSize: &size,
				BoundVolumeSnapshotContentName: ptr.To("snapcontent-" + string(vs.UID)),
				CreationTime:                   ptr.To(metav1.Now()),
			}
		}
		_, _ = snaps.SnapshotV1().VolumeSnapshots(vs.Namespace).UpdateStatus(ctx, &vs, metav1.UpdateOptions{})
	}
}
