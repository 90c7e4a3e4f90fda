package doctor

import (
	"context"
	"fmt"
	"strings"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// snapshotGroupVersion is the API the CSI external-snapshotter serves
	// (its CRDs); a cluster without it takes no CSI snapshots at all.
	snapshotGroupVersion = "snapshot.storage.k8s.io/v1"
	// defaultSnapshotClassAnnotation marks the VolumeSnapshotClass a
	// VolumeSnapshot of a driver's volume gets when it names none.
	defaultSnapshotClassAnnotation = "snapshot.storage.kubernetes.io/is-default-class"
)

// What a snapshot and a fork are, either way, in the user's words.
const (
	withCSISnapshots = "snapshot NAME takes CSI snapshots and create NEW --from NAME|SNAPSHOT clones in the cluster"
	withArchives     = "snapshot NAME --to FILE and create NEW --from FILE move a workspace as an archive instead"
)

// checkSnapshots says how `snapshot` and `create --from` can work here:
// whether the cluster serves CSI snapshots, which VolumeSnapshotClasses
// there are, and whether the driver behind the default StorageClass (where
// --persist workspaces come from) has a default one, which a snapshot that
// names no class needs.
func checkSnapshots(ctx context.Context, env *Env) []Result {
	served, err := servesSnapshotClasses(ctx, env)
	if err != nil {
		return []Result{warn("unknown (skipped): cannot tell whether the cluster serves "+snapshotGroupVersion+": "+err.Error(),
			"run doctor again; meanwhile "+withArchives)}
	}
	if !served {
		return []Result{ok("no CSI snapshot support (the cluster does not serve %s): %s", snapshotGroupVersion, withArchives)}
	}
	if env.Snapshots == nil {
		return []Result{warn("unknown (skipped): the cluster serves "+snapshotGroupVersion+", but doctor has no client for it", "run doctor from the command line")}
	}
	list, err := env.Snapshots.SnapshotV1().VolumeSnapshotClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		action := "run doctor again; meanwhile " + withArchives
		if apierrors.IsForbidden(err) {
			action = "nothing to do if you know the cluster's VolumeSnapshotClasses; kubectl agentkernel rbac --all-namespaces lets doctor list them"
		}
		return []Result{warn("unknown (skipped): cannot list VolumeSnapshotClasses: "+err.Error(), action)}
	}
	if len(list.Items) == 0 {
		return []Result{warn("the cluster serves "+snapshotGroupVersion+" but has no VolumeSnapshotClass: "+withArchives,
			"to snapshot and fork in the cluster, ask an admin for a VolumeSnapshotClass of your CSI driver")}
	}
	classes := make([]string, len(list.Items))
	for i := range list.Items {
		classes[i] = describeSnapshotClass(&list.Items[i])
	}
	found := "VolumeSnapshotClasses: " + strings.Join(classes, "; ")

	provisioner, scName, unmatched := defaultProvisioner(ctx, env)
	if provisioner == "" {
		return []Result{ok("%s; %s to match them with: %s where a workspace's StorageClass's provisioner has a default class, otherwise %s",
			found, unmatched, withCSISnapshots, withArchives)}
	}
	var forDriver, defaults []string
	for i := range list.Items {
		if c := &list.Items[i]; c.Driver == provisioner {
			forDriver = append(forDriver, c.Name)
			if isDefaultSnapshotClass(c) {
				defaults = append(defaults, c.Name)
			}
		}
	}
	of := fmt.Sprintf("the default StorageClass %s's provisioner %s", scName, provisioner)
	switch {
	case len(defaults) == 1:
		return []Result{ok("%s; %s has the default snapshot class %s: %s", found, of, defaults[0], withCSISnapshots)}
	case len(defaults) > 1:
		return []Result{warn(fmt.Sprintf("%s; %s has %d default snapshot classes (%s): a snapshot that names no class is refused", found, of, len(defaults), strings.Join(defaults, ", ")),
			"ask an admin to leave one of them marked "+defaultSnapshotClassAnnotation+"; meanwhile "+withArchives)}
	case len(forDriver) > 0:
		return []Result{warn(fmt.Sprintf("%s; %s has snapshot classes (%s) but none marked default: a snapshot that names no class is refused", found, of, strings.Join(forDriver, ", ")),
			"ask an admin to annotate one "+defaultSnapshotClassAnnotation+"=true; meanwhile "+withArchives)}
	}
	return []Result{warn(fmt.Sprintf("%s; none is for %s: its workspaces cannot be snapshotted in the cluster", found, of),
		"ask an admin for a VolumeSnapshotClass of driver "+provisioner+"; meanwhile "+withArchives)}
}

// servesSnapshotClasses asks discovery, which every user may, so that a
// cluster without the CRDs is told apart from a user who may not list.
func servesSnapshotClasses(ctx context.Context, env *Env) (bool, error) {
	resources, err := env.Clientset.Discovery().ServerResourcesForGroupVersionWithContext(ctx, snapshotGroupVersion)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, r := range resources.APIResources {
		if r.Name == "volumesnapshotclasses" {
			return true, nil
		}
	}
	return false, nil
}

// defaultProvisioner is the provisioner and name of the one default
// StorageClass, or (provisioner "") why there is none to match snapshot
// classes with; the storage check says more.
func defaultProvisioner(ctx context.Context, env *Env) (provisioner, name, none string) {
	list, err := env.Clientset.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", "", "the StorageClasses cannot be listed, so no default StorageClass"
	}
	for i := range list.Items {
		if sc := &list.Items[i]; isDefaultClass(sc) {
			if provisioner != "" {
				return "", "", "several StorageClasses are marked default, so none"
			}
			provisioner, name = sc.Provisioner, sc.Name
		}
	}
	if provisioner == "" {
		return "", "", "no default StorageClass"
	}
	return provisioner, name, ""
}

func isDefaultSnapshotClass(c *snapshotv1.VolumeSnapshotClass) bool {
	return c.Annotations[defaultSnapshotClassAnnotation] == "true"
}

// describeSnapshotClass: "csi-hostpath-snapclass (driver
// hostpath.csi.k8s.io, deletionPolicy Delete, default)".
func describeSnapshotClass(c *snapshotv1.VolumeSnapshotClass) string {
	s := fmt.Sprintf("%s (driver %s, deletionPolicy %s", c.Name, c.Driver, c.DeletionPolicy)
	if isDefaultSnapshotClass(c) {
		s += ", default"
	}
	return s + ")"
}
