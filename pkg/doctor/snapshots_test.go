package doctor

import (
	"context"
	"fmt"
	"strings"
	"testing"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapshotfake "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned/fake"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	k8stesting "k8s.io/client-go/testing"
)

// What snapshot and create --from can do on a cluster: no snapshot API,
// no class, a default class for the default StorageClass's driver, classes
// with no default for it, classes of other drivers, two defaults, no
// default StorageClass, classes doctor may not list, discovery that fails.
func TestSnapshotClasses(t *testing.T) {
	const driver = "hostpath.csi.k8s.io"
	standard := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "standard", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner: driver}
	other := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Provisioner: driver}
	defaultToo := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "also", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner: "ebs.csi.aws.com"}
	class := func(name, driver string, isDefault bool) *snapshotv1.VolumeSnapshotClass {
		c := &snapshotv1.VolumeSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Driver: driver, DeletionPolicy: snapshotv1.VolumeSnapshotContentDelete}
		if isDefault {
			c.Annotations = map[string]string{"snapshot.storage.kubernetes.io/is-default-class": "true"}
		}
		return c
	}
	forbidden := func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "snapshot.storage.k8s.io", Resource: "volumesnapshotclasses"}, "",
			fmt.Errorf(`User "alice" cannot list resource "volumesnapshotclasses" in API group "snapshot.storage.k8s.io" at the cluster scope`))
	}
	for _, c := range []struct {
		name           string
		noAPI          bool
		storage        []runtime.Object
		classes        []runtime.Object
		listReactor    k8stesting.ReactionFunc
		discoveryFails bool
		// storageForbidden: the user may not list StorageClasses.
		storageForbidden bool
		noClient         bool
		status           Status
		found            []string
		action           string
	}{
		{name: "API absent", noAPI: true, storage: []runtime.Object{standard}, status: OK,
			found: []string{"no CSI snapshot support (the cluster does not serve snapshot.storage.k8s.io/v1)", "snapshot NAME --to FILE and create NEW --from FILE"}},
		{name: "no class", storage: []runtime.Object{standard}, status: Warn,
			found: []string{"serves snapshot.storage.k8s.io/v1 but has no VolumeSnapshotClass", "snapshot NAME --to FILE"}, action: "ask an admin for a VolumeSnapshotClass"},
		{name: "one default for the driver", storage: []runtime.Object{standard, other},
			classes: []runtime.Object{class("hostpath-snap", driver, true), class("hostpath-retain", driver, false), class("ebs", "ebs.csi.aws.com", true)}, status: OK,
			found: []string{"hostpath-snap (driver hostpath.csi.k8s.io, deletionPolicy Delete, default)", "hostpath-retain (driver hostpath.csi.k8s.io, deletionPolicy Delete)",
				"the default StorageClass standard's provisioner hostpath.csi.k8s.io has the default snapshot class hostpath-snap", "snapshot NAME takes CSI snapshots and create NEW --from NAME|SNAPSHOT clones"}},
		{name: "classes but no default for the driver", storage: []runtime.Object{standard},
			classes: []runtime.Object{class("hostpath-snap", driver, false), class("ebs", "ebs.csi.aws.com", true)}, status: Warn,
			found:  []string{"the default StorageClass standard's provisioner hostpath.csi.k8s.io has snapshot classes (hostpath-snap) but none marked default"},
			action: "snapshot.storage.kubernetes.io/is-default-class=true; meanwhile snapshot NAME --to FILE"},
		{name: "classes of other drivers only", storage: []runtime.Object{standard},
			classes: []runtime.Object{class("ebs", "ebs.csi.aws.com", true)}, status: Warn,
			found:  []string{"none is for the default StorageClass standard's provisioner hostpath.csi.k8s.io: its workspaces cannot be snapshotted in the cluster"},
			action: "VolumeSnapshotClass of driver hostpath.csi.k8s.io"},
		{name: "two defaults for the driver", storage: []runtime.Object{standard},
			classes: []runtime.Object{class("a", driver, true), class("b", driver, true)}, status: Warn,
			found: []string{"has 2 default snapshot classes (a, b)"}, action: "leave one of them marked"},
		{name: "no default StorageClass", storage: []runtime.Object{other},
			classes: []runtime.Object{class("hostpath-snap", driver, true)}, status: OK,
			found: []string{"hostpath-snap (driver hostpath.csi.k8s.io, deletionPolicy Delete, default)", "no default StorageClass to match them with"}},
		{name: "StorageClasses not listed", storage: []runtime.Object{standard}, storageForbidden: true,
			classes: []runtime.Object{class("hostpath-snap", driver, true)}, status: OK,
			found: []string{"hostpath-snap (driver hostpath.csi.k8s.io, deletionPolicy Delete, default); the StorageClasses cannot be listed, so no default StorageClass to match them with"}},
		{name: "two default StorageClasses", storage: []runtime.Object{standard, defaultToo},
			classes: []runtime.Object{class("hostpath-snap", driver, true)}, status: OK,
			found: []string{"several StorageClasses are marked default, so none to match them with"}},
		{name: "forbidden", storage: []runtime.Object{standard}, listReactor: forbidden, status: Warn,
			found:  []string{"unknown (skipped): cannot list VolumeSnapshotClasses", `cannot list resource "volumesnapshotclasses"`},
			action: "kubectl agentkernel rbac --all-namespaces lets doctor list them"},
		{name: "discovery fails", storage: []runtime.Object{standard}, discoveryFails: true, status: Warn,
			found: []string{"unknown (skipped): cannot tell whether the cluster serves snapshot.storage.k8s.io/v1", "the server is on fire"}, action: "run doctor again"},
		{name: "no snapshot client", storage: []runtime.Object{standard}, noClient: true, status: Warn,
			found: []string{"unknown (skipped)"}, action: "run doctor from the command line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := cluster(t, "v1.37.2", nil, c.storage...)
			disc := cs.Discovery().(*fakediscovery.FakeDiscovery)
			if !c.noAPI {
				disc.Resources = append(disc.Resources, &metav1.APIResourceList{GroupVersion: "snapshot.storage.k8s.io/v1", APIResources: []metav1.APIResource{
					{Name: "volumesnapshotclasses", Kind: "VolumeSnapshotClass"}, {Name: "volumesnapshots", Namespaced: true, Kind: "VolumeSnapshot"},
				}})
			}
			if c.discoveryFails {
				disc.PrependReactor("get", "resource", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewInternalError(fmt.Errorf("the server is on fire"))
				})
			}
			if c.storageForbidden {
				cs.PrependReactor("list", "storageclasses", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}, "", fmt.Errorf("denied"))
				})
			}
			snaps := snapshotfake.NewSimpleClientset(c.classes...) //nolint:staticcheck // the only fake this client ships
			listed := false
			snaps.PrependReactor("list", "volumesnapshotclasses", func(a k8stesting.Action) (bool, runtime.Object, error) {
				listed = true
				if c.listReactor != nil {
					return c.listReactor(a)
				}
				return false, nil, nil
			})
			env := &Env{Clientset: cs, Snapshots: snaps, Namespace: "agents"}
			if c.noClient {
				env.Snapshots = nil
			}
			results := checkSnapshots(context.Background(), env)
			if len(results) != 1 {
				t.Fatalf("want one line, got:\n%s", report(results))
			}
			r := results[0]
			for _, f := range c.found {
				wantLine(t, results, "", c.status, f)
			}
			if !strings.Contains(r.Action, c.action) {
				t.Errorf("the action %q does not say %q", r.Action, c.action)
			}
			if c.status == OK && r.Action != "" {
				t.Errorf("an ok line with an action: %q", r.Action)
			}
			if (c.noAPI || c.discoveryFails) && listed {
				t.Error("listed VolumeSnapshotClasses on a cluster that does not serve them")
			}
		})
	}
}

// In the whole report, the check has its own name, after storage.
func TestSnapshotsCheckInTheReport(t *testing.T) {
	cs := cluster(t, "v1.37.2", nil)
	results := Run(context.Background(), &Env{Clientset: cs, Snapshots: snapshotfake.NewSimpleClientset(), Namespace: "agents", Server: "https://k8s"}) //nolint:staticcheck // the only fake this client ships
	wantLine(t, results, "snapshots", OK, "no CSI snapshot support")
	storage, snapshots := -1, -1
	for i, r := range results {
		switch r.Check {
		case "storage":
			storage = i
		case "snapshots":
			snapshots = i
		}
	}
	if storage < 0 || snapshots != storage+1 {
		t.Errorf("snapshots (line %d) does not follow storage (line %d):\n%s", snapshots, storage, report(results))
	}
}
