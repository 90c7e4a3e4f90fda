package snapshot

import (
	"context"
	"fmt"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// From returns the dataSource of a workspace restored from vs.
func From(vs *snapv1.VolumeSnapshot) *corev1.TypedLocalObjectReference {
	group := snapv1.GroupName
	return &corev1.TypedLocalObjectReference{APIGroup: &group, Kind: "VolumeSnapshot", Name: vs.Name}
}

// CloneOf returns the dataSource of a workspace cloned from pvc.
func CloneOf(pvc *corev1.PersistentVolumeClaim) *corev1.TypedLocalObjectReference {
	return &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: pvc.Name}
}

// RestoreSize is the least a workspace restored from vs may ask for.
func RestoreSize(vs *snapv1.VolumeSnapshot) resource.Quantity {
	if vs.Status != nil && vs.Status.RestoreSize != nil {
		return vs.Status.RestoreSize.DeepCopy()
	}
	return resource.Quantity{}
}

// StorageClass is the class of the workspace vs was taken of, as Take
// noted it ("" when it was the default, or the snapshot is not ours).
func StorageClass(vs *snapv1.VolumeSnapshot) string { return vs.Annotations[AnnotationStorageClass] }

// provisionerAnnotations name the driver that provisioned a claim: the
// PV controller writes them on every dynamically provisioned claim.
var provisionerAnnotations = []string{"volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner"}

// Cloneable says whether pvc can be cloned by its driver, and if not, why.
// A clone asks the claim's provisioner to copy a volume, which only a CSI
// driver does: other provisioners ignore the dataSource and hand out an
// empty volume, a fork without the work. So a clone is only asked of a
// claim whose provisioner is a CSI driver the cluster knows (a CSIDriver
// object; reading it is a cluster-wide read, and without it the answer is
// no, with the reason).
func Cloneable(ctx context.Context, cs kubernetes.Interface, pvc *corev1.PersistentVolumeClaim) (bool, string) {
	driver := ""
	for _, a := range provisionerAnnotations {
		if d := pvc.Annotations[a]; d != "" {
			driver = d
			break
		}
	}
	if driver == "" {
		return false, "its workspace was not made by a dynamic provisioner"
	}
	_, err := cs.StorageV1().CSIDrivers().Get(ctx, driver, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, fmt.Sprintf("its provisioner %s is not a CSI driver", driver)
	case apierrors.IsForbidden(err):
		return false, fmt.Sprintf("whether its provisioner %s is a CSI driver is unknown: you may not read csidrivers", driver)
	case err != nil:
		return false, fmt.Sprintf("whether its provisioner %s can clone is unknown: %v", driver, err)
	}
	return true, ""
}
