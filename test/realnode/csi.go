package realnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// CSI storage in the guest (Options.CSI): the test driver of test/realnode/csi
// and kubernetes-csi's external-provisioner, external-snapshotter and snapshot
// controller run as plain processes started by the guest's init, so claims of
// the driver's StorageClass are provisioned for real and VolumeSnapshots are
// real CSI snapshots. The cluster-side objects a test needs (CSIDriver,
// StorageClass, VolumeSnapshotClass) are the test's to make; the snapshot
// CRDs are installed here, before the guest boots, since the snapshot
// controller exits when they are missing.

// CSIDriverName is the test driver's name: the CSIDriver object's and the
// StorageClass provisioner's.
const CSIDriverName = "csi.agentkernel.test"

// CSIBaseDir is where the driver keeps volumes (volumes/<id>/) and
// snapshots (snapshots/<id>.tar) in the guest.
const CSIBaseDir = "/var/lib/agentkernel-csi"

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// csiGuestFiles are the sidecars' credentials. A test fixture: they get a
// client certificate in system:masters, what the suite's admin kubeconfig
// has, rather than the RBAC of the sidecars' own install manifests.
func csiGuestFiles(ca *localcluster.Authority, apiPort string) (map[string][]byte, error) {
	cert, key, err := ca.Issue(time.Now(), localcluster.CertRequest{
		CommonName:    "agentkernel-csi-sidecars",
		Organizations: []string{"system:masters"},
		Client:        true,
	})
	if err != nil {
		return nil, err
	}
	b, err := guestKubeconfig(apiPort, "csi")
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		"etc/kubernetes/pki/csi.crt":    cert,
		"etc/kubernetes/pki/csi.key":    key,
		"etc/kubernetes/csi.kubeconfig": b,
	}, nil
}

// installSnapshotCRDs creates the VolumeSnapshot CRDs that build.sh copied
// into the artifacts (an existing one is left as it is) and waits until the
// API server serves them.
func installSnapshotCRDs(ctx context.Context, kubeconfig string, a *Artifacts, log io.Writer) error {
	files, err := filepath.Glob(filepath.Join(a.Dir, "csi-crds", "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("the realnode artifacts in %s have no snapshot CRDs (csi-crds/*.yaml): rebuild them with test/realnode/build/build.sh", a.Dir)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := client.Resource(crdResource)
	var names []string
	for _, f := range files {
		obj, err := readObject(f)
		if err != nil {
			return err
		}
		if _, err := crds.Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create the CRD in %s: %w", f, err)
		}
		names = append(names, obj.GetName())
	}
	deadline := time.Now().Add(time.Minute)
	for _, name := range names {
		for {
			got, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err == nil && crdEstablished(got) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s not Established after a minute (last error: %v)", name, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	fmt.Fprintf(log, "realnode: snapshot CRDs installed (%d)\n", len(names))
	return nil
}

func readObject(file string) (*unstructured.Unstructured, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096).Decode(&obj.Object); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if obj.GetName() == "" {
		return nil, fmt.Errorf("%s: %w", file, errors.New("no object with a name in it"))
	}
	return obj, nil
}

func crdEstablished(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
