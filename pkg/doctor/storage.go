package doctor

import (
	"context"
	"fmt"
	"strings"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// defaultClassAnnotation marks the cluster's default StorageClass (and its
// beta spelling, which clusters still carry).
var defaultClassAnnotations = []string{"storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"}

// checkStorage says where a persistent sandbox's workspace (--persist)
// would live: the default StorageClass, how it binds and whether it grows.
func checkStorage(ctx context.Context, env *Env) []Result {
	list, err := env.Clientset.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Result{warn("cannot list StorageClasses: "+err.Error(),
			"nothing to do if you know the cluster's StorageClasses (persistent sandboxes name one with --storage-class); kubectl agentkernel rbac --all-namespaces lets doctor list them")}
	}
	var defaults, others []string
	for i := range list.Items {
		sc := &list.Items[i]
		if isDefaultClass(sc) {
			defaults = append(defaults, describeClass(sc))
		} else {
			others = append(others, sc.Name)
		}
	}
	switch {
	case len(defaults) == 1:
		return []Result{ok("persistent sandboxes (--persist) get their workspace from the default StorageClass %s", defaults[0])}
	case len(defaults) > 1:
		return []Result{warn(fmt.Sprintf("%d StorageClasses are marked default (%s): the API server picks the newest", len(defaults), strings.Join(defaults, "; ")),
			"name one with --storage-class when you create a persistent sandbox, or ask an admin to leave one default")}
	case len(others) > 0:
		return []Result{warn("no default StorageClass, only: "+strings.Join(others, ", "),
			"name one with --storage-class when you create a persistent sandbox (--persist)")}
	}
	return []Result{warn("no StorageClass: a persistent sandbox's workspace (--persist) binds only to a PersistentVolume an admin made for it",
		"ask an admin for a StorageClass (a dynamic provisioner), or use disposable sandboxes")}
}

func isDefaultClass(sc *storagev1.StorageClass) bool {
	for _, a := range defaultClassAnnotations {
		if sc.Annotations[a] == "true" {
			return true
		}
	}
	return false
}

// describeClass: "standard (provisioner rancher.io/local-path, binds
// WaitForFirstConsumer, no volume expansion)".
func describeClass(sc *storagev1.StorageClass) string {
	binding := storagev1.VolumeBindingImmediate
	if sc.VolumeBindingMode != nil {
		binding = *sc.VolumeBindingMode
	}
	expansion := "no volume expansion"
	if sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion {
		expansion = "volumes can grow"
	}
	return fmt.Sprintf("%s (provisioner %s, binds %s, %s)", sc.Name, sc.Provisioner, binding, expansion)
}
