package agentsandbox

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
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Where agent-sandbox's own install puts its controller.
const (
	SystemNamespace = "agent-sandbox-system"
	ServiceAccount  = "agent-sandbox-controller"
)

// Manifests are the files of the module's k8s/ that its install applies
// (see its k8s/kustomization.yaml), CRDs first.
var Manifests = []string{
	"crds/agents.x-k8s.io_sandboxes.yaml",
	"crds/extensions.agents.x-k8s.io_sandboxclaims.yaml",
	"crds/extensions.agents.x-k8s.io_sandboxtemplates.yaml",
	"crds/extensions.agents.x-k8s.io_sandboxwarmpools.yaml",
	"controller.yaml",
	"rbac.generated.yaml",
	"extensions.yaml",
	"extensions-rbac.generated.yaml",
}

// hostProcessReplaces are the kinds of the manifests not applied: the
// controller runs on the host instead of in this Deployment, and nothing
// scrapes its metrics through a Service.
var hostProcessReplaces = map[string]bool{"Deployment": true, "Service": true}

// Installed is what Install applied, by kind, for the bench's report.
type Installed map[string][]string

// Install applies the manifests to the cluster cfg talks to (server-side
// apply, so a second Install changes nothing) and waits until the CRDs are
// Established.
func (p *Peer) Install(ctx context.Context, cfg *restclient.Config) (Installed, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	installed := Installed{}
	for _, m := range Manifests {
		objs, err := readManifest(filepath.Join(p.SourceDir, "k8s", filepath.FromSlash(m)))
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			if hostProcessReplaces[obj.GetKind()] {
				continue
			}
			gvk := obj.GroupVersionKind()
			mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", m, gvk.Kind, obj.GetName(), err)
			}
			var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
			if obj.GetNamespace() != "" {
				ri = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
			}
			if _, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "agentkernel-bench", Force: true}); err != nil {
				return nil, fmt.Errorf("apply %s %s from agent-sandbox %s's k8s/%s: %w", gvk.Kind, obj.GetName(), Version, m, err)
			}
			installed[gvk.Kind] = append(installed[gvk.Kind], obj.GetName())
			if gvk.Kind == "CustomResourceDefinition" {
				if err := waitEstablished(ctx, dyn, obj.GetName()); err != nil {
					return nil, err
				}
			}
		}
	}
	return installed, nil
}

func readManifest(path string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent-sandbox %s ships no %s: %w", Version, path, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

var crds = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// waitEstablished waits for a CRD's Established condition: until then its
// resources are not served. A CRD the API server refuses to establish
// (NamesAccepted false) says why.
func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		crd, err := dyn.Resource(crds).Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		var why string
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				c, _ := c.(map[string]any)
				switch {
				case c["type"] == "Established" && c["status"] == "True":
					return nil
				case c["status"] == "False":
					why = fmt.Sprintf("%v: %v", c["type"], c["message"])
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CRD %s is not Established after a minute (%s)", name, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
