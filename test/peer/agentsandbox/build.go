package agentsandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// Version is the agent-sandbox release built here: the one the Go module
// proxy serves (module/go.mod pins it; keep the two in step).
const (
	Module  = "sigs.k8s.io/agent-sandbox"
	Version = "v1.0.1"
)

// Peer is a built agent-sandbox: the controller binary and the directory of
// the module's source, whose k8s/ holds the manifests it ships.
type Peer struct {
	Controller string
	SourceDir  string
}

// Build builds the controller (cached by content, see
// localcluster.BuildModuleBinary) and finds the module's source. A cold
// build takes a few minutes on 2 cores; progress goes to log.
func Build(ctx context.Context, log io.Writer) (*Peer, error) {
	dir, err := moduleDir()
	if err != nil {
		return nil, err
	}
	bin, err := localcluster.BuildModuleBinary(ctx, log, localcluster.ModuleBinary{
		Name:      "agent-sandbox-controller",
		ModuleDir: dir,
		Package:   Module + "/cmd/agent-sandbox-controller",
		LDFlags:   "-s -w -X " + Module + "/internal/version.gitVersion=" + Version,
	})
	if err != nil {
		return nil, fmt.Errorf("build agent-sandbox %s's controller: %w", Version, err)
	}
	src, err := download(ctx, dir)
	if err != nil {
		return nil, err
	}
	return &Peer{Controller: bin, SourceDir: src}, nil
}

// moduleDir finds ./module beside this file (go test and go run keep the
// source) or under the working directory's repository.
func moduleDir() (string, error) {
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "module"))
	}
	if wd, err := os.Getwd(); err == nil {
		candidates = append(candidates, filepath.Join(wd, "test", "peer", "agentsandbox", "module"))
	}
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "go.mod")); err == nil {
			return c, nil
		}
	}
	return "", errors.New("cannot find test/peer/agentsandbox/module/go.mod; run from inside the kubectl-agentkernel repository")
}

// download returns the module cache directory of agent-sandbox at the
// version the module pins (fetched from the module proxy if missing).
func download(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", Module)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var dl struct{ Dir, Version, Error string }
	_ = json.Unmarshal(out, &dl)
	if err != nil || dl.Error != "" || dl.Dir == "" {
		return "", fmt.Errorf("go mod download %s (in %s): %v %s %s", Module, dir, err, dl.Error, strings.TrimSpace(stderr.String()))
	}
	if dl.Version != Version {
		return "", fmt.Errorf("%s pins %s %s, this package says %s: keep module/go.mod and Version in step", dir, Module, dl.Version, Version)
	}
	return dl.Dir, nil
}
