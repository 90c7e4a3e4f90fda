package realnode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Artifacts are what a guest boots from, all in Dir: a kernel, an initramfs
// and a raw ext4 disk image that each boot uses read-only, through a
// throwaway qcow2 overlay.
type Artifacts struct {
	Dir    string
	Kernel string
	Initrd string
	Disk   string
	// Manifest holds the versions inside the image (manifest.env):
	// KERNEL_VERSION, K8S_VERSION, CONTAINERD_VERSION, KNP_VERSION and the
	// image names PAUSE_IMAGE, SANDBOX_IMAGE, ROOT_IMAGE.
	Manifest map[string]string
}

// Image names baked into the disk (see build/build.sh).
const (
	// SandboxImage stands in for the plugin's default image; it has no
	// registry behind it, so pods must not use imagePullPolicy Always.
	SandboxImage = "docker.io/library/busybox:1.37.0"
	// RootImage's config says User 0: the kubelet must refuse it under
	// runAsNonRoot when the pod does not set runAsUser.
	RootImage = "agentkernel.test/rootuser:1"
)

// BuildScript is the path of build/build.sh next to this package's source.
func BuildScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the realnode package source")
	}
	p := filepath.Join(filepath.Dir(file), "build", "build.sh")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("realnode build script: %w", err)
	}
	return p, nil
}

// Build runs build/build.sh, which builds what is missing from its cache
// (${XDG_CACHE_HOME:-~/.cache}/kubectl-agentkernel/realnode) and installs the
// Debian packages it needs. The kubelet is built from the same components
// module and with the same flags as localcluster's binaries, so the Go build
// cache serves both. kubelet, if not empty, is a kubelet binary to put in the
// image instead. Progress goes to log.
func Build(ctx context.Context, log io.Writer, kubelet string) (*Artifacts, error) {
	if log == nil {
		log = io.Discard
	}
	script, err := BuildScript()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = os.Environ()
	if kubelet != "" {
		cmd.Env = append(cmd.Env, "AGENTKERNEL_REALNODE_KUBELET="+kubelet)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build the realnode image (%s): %w; its log says why", script, err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return LoadArtifacts(lines[len(lines)-1])
}

// LoadArtifacts reads a directory that build.sh made.
func LoadArtifacts(dir string) (*Artifacts, error) {
	a := &Artifacts{
		Dir:      dir,
		Kernel:   filepath.Join(dir, "vmlinuz"),
		Initrd:   filepath.Join(dir, "initrd.img"),
		Disk:     filepath.Join(dir, "disk.img"),
		Manifest: map[string]string{},
	}
	f, err := os.Open(filepath.Join(dir, "manifest.env"))
	if err != nil {
		return nil, fmt.Errorf("not a realnode artifact directory: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok {
			a.Manifest[k] = v
		}
	}
	for _, p := range []string{a.Kernel, a.Initrd, a.Disk} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("incomplete realnode artifacts: %w", err)
		}
	}
	return a, s.Err()
}
