package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// binaries builds or finds what the rows run: the plugin, the timing
// helper and kubectl; the report describes the two compared.
func (o *options) binaries(ctx context.Context, e *Env, report *Report) (err error) {
	if e.Plugin, report.Plugin, err = o.buildPlugin(ctx, e.Tmp); err != nil {
		return err
	}
	if e.timeproc, err = goBuild(ctx, e.Tmp, "./bench/internal/timeproc"); err != nil {
		return err
	}
	if e.Kubectl, err = o.findKubectl(ctx); err != nil {
		return err
	}
	if report.Kubectl, err = describeKubectl(ctx, e.Kubectl); err != nil {
		return err
	}
	// kubectl finds the plugin on PATH for `kubectl agentkernel`.
	e.childEnv = append(withoutEnv(os.Environ(), "KUBECONFIG", "PATH"), "PATH="+filepath.Dir(e.Plugin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	return nil
}

// releaseFlags are .goreleaser.yaml's: what users install.
var releaseFlags = []string{"-trimpath", "-ldflags", "-s -w"}

// buildPlugin builds the plugin as the release does, or describes -plugin.
func (o *options) buildPlugin(ctx context.Context, tmp string) (string, Binary, error) {
	// Under its plugin name in a directory of its own, which goes first on
	// PATH, so that `kubectl agentkernel` finds this one.
	bin := filepath.Join(tmp, "bin", "kubectl-agentkernel")
	build := "as given (-plugin)"
	if o.plugin != "" {
		given, err := filepath.Abs(o.plugin)
		if err != nil {
			return "", Binary{}, err
		}
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			return "", Binary{}, err
		}
		if err := os.Symlink(given, bin); err != nil {
			return "", Binary{}, err
		}
	} else {
		args := append(append([]string{"build"}, releaseFlags...), "-o", bin, "./cmd/kubectl-agentkernel")
		c := exec.CommandContext(ctx, "go", args...)
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			return "", Binary{}, fmt.Errorf("building the plugin (run the bench from the repository root): %v: %s", err, out)
		}
		build = runtime.Version() + " CGO_ENABLED=0 -trimpath -ldflags='-s -w' (as .goreleaser.yaml)"
	}
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "", Binary{}, fmt.Errorf("%s version: %w", bin, err)
	}
	b := Binary{Path: o.plugin, Version: strings.TrimSpace(string(out)), Build: build, Size: fileSize(bin)}
	if o.plugin == "" {
		b.Path = "built from " + gitDescribe(ctx)
	}
	return bin, b, nil
}

// goBuild builds a helper of the bench into dir.
func goBuild(ctx context.Context, dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	c := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s (run the bench from the repository root): %v: %s", pkg, err, out)
	}
	return bin, nil
}

// findKubectl picks the kubectl to compare with.
func (o *options) findKubectl(ctx context.Context) (string, error) {
	if o.kubectl != "" {
		return exec.LookPath(o.kubectl)
	}
	fmt.Fprintln(os.Stderr, "bench: kubectl v1.37.2 as released (built once, cached)")
	k, err := localcluster.ReleaseKubectl(ctx, os.Stderr)
	if err == nil {
		return k, nil
	}
	fmt.Fprintf(os.Stderr, "bench: cannot build kubectl (%v); using kubectl on PATH\n", err)
	return exec.LookPath("kubectl")
}

func describeKubectl(ctx context.Context, kubectl string) (Binary, error) {
	out, err := exec.CommandContext(ctx, kubectl, "version", "--client", "-o", "json").Output()
	if err != nil {
		return Binary{}, fmt.Errorf("%s version --client: %w", kubectl, err)
	}
	var v struct {
		ClientVersion struct {
			GitVersion string `json:"gitVersion"`
			GoVersion  string `json:"goVersion"`
		} `json:"clientVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return Binary{}, fmt.Errorf("%s version --client -o json: %w", kubectl, err)
	}
	return Binary{Path: kubectl, Version: v.ClientVersion.GitVersion, Build: v.ClientVersion.GoVersion + " " + linkage(kubectl), Size: fileSize(kubectl)}, nil
}

// linkage says whether a binary is static: a dynamically linked Go binary
// that links the plugin package (kustomize does) exports every symbol and
// starts bigger, so it matters for the memory rows.
func linkage(bin string) string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "CGO_ENABLED=") {
			return f[1]
		}
	}
	return ""
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func gitDescribe(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "this checkout"
	}
	return "commit " + strings.TrimSpace(string(out))
}
