package agentsandbox

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// What agent-sandbox's install applies, less what the host process
// replaces, is exactly what Install applies: if a new release ships
// another kind (a webhook, a second Deployment, a ConfigMap the controller
// must read), this test says so before the bench runs a half-installed
// peer.
func TestManifestsAreWhatItsInstallApplies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	dir, err := moduleDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src, err := download(ctx, dir)
	if err != nil {
		t.Fatalf("the module of agent-sandbox %s (from the Go module proxy): %v", Version, err)
	}
	var applied, skipped []string
	for _, m := range Manifests {
		objs, err := readManifest(filepath.Join(src, "k8s", m))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			what := o.GetKind() + "/" + o.GetName()
			if hostProcessReplaces[o.GetKind()] {
				skipped = append(skipped, what)
				continue
			}
			applied = append(applied, what)
			if o.GetKind() == "CustomResourceDefinition" && !strings.HasPrefix(m, "crds/") {
				t.Errorf("%s outside crds/ (%s): Install waits for CRDs only as it applies them first", what, m)
			}
		}
	}
	slices.Sort(applied)
	slices.Sort(skipped)
	wantApplied := []string{
		"ClusterRole/agent-sandbox-controller", "ClusterRole/agent-sandbox-controller-extensions",
		"ClusterRoleBinding/agent-sandbox-controller", "ClusterRoleBinding/agent-sandbox-controller-extensions",
		"CustomResourceDefinition/sandboxclaims.extensions.agents.x-k8s.io", "CustomResourceDefinition/sandboxes.agents.x-k8s.io",
		"CustomResourceDefinition/sandboxtemplates.extensions.agents.x-k8s.io", "CustomResourceDefinition/sandboxwarmpools.extensions.agents.x-k8s.io",
		"Namespace/" + SystemNamespace, "ServiceAccount/" + ServiceAccount,
	}
	if !slices.Equal(applied, wantApplied) {
		t.Errorf("Install applies\n%v\nwant\n%v", applied, wantApplied)
	}
	if want := []string{"Deployment/agent-sandbox-controller", "Service/agent-sandbox-controller"}; !slices.Equal(skipped, want) {
		t.Errorf("left to the host process: %v, want %v", skipped, want)
	}
}

func TestReadManifestSaysWhichFileIsMissing(t *testing.T) {
	_, err := readManifest(filepath.Join(t.TempDir(), "k8s", "nothing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "agent-sandbox "+Version+" ships no ") || !strings.Contains(err.Error(), "nothing.yaml") {
		t.Fatalf("readManifest of a missing file: %v", err)
	}
}
