package localcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ReleaseKubectl returns a kubectl KubernetesVersion built the way Kubernetes
// releases it: a static binary (CGO_ENABLED=0, as hack/lib/golang.sh builds
// kubectl), -trimpath, -s -w. Binaries.Kubectl is built with cgo like the
// rest of the control plane; that one is dynamically linked and, because
// kustomize links Go's plugin package, exports every symbol: 79 MB and about
// 75 MB peak RSS for `kubectl version --client`, against 55 MB for a release
// build. Compare start-up and memory with this one. It is cached next to the
// control plane (CacheRoot()/<key>-release-kubectl) and built on first use
// (about 5 minutes on 2 cores; less with a warm build cache).
func ReleaseKubectl(ctx context.Context, log io.Writer) (string, error) {
	if log == nil {
		log = io.Discard
	}
	plan, err := planBuild(ctx)
	if err != nil {
		return "", err
	}
	dir := plan.dir + "-release-kubectl"
	bin := filepath.Join(dir, "kubectl")
	if fileExists(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, ".lock"), log)
	if err != nil {
		return "", err
	}
	defer unlock()
	if fileExists(bin) {
		return bin, nil
	}
	fmt.Fprintf(log, "build: kubectl %s as released (CGO_ENABLED=0 -trimpath) into %s\n", KubernetesVersion, dir)
	tmp := bin + ".tmp"
	args := []string{"build", "-v", "-trimpath", "-ldflags", kubeLDFlags(), "-o", tmp, "k8s.io/kubernetes/cmd/kubectl"}
	if err := runGo(ctx, plan.tree.componentsDir, []string{"CGO_ENABLED=0"}, log, "kubectl", args...); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return bin, os.Rename(tmp, bin)
}
