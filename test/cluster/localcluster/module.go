package localcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// ModuleBinary is one program built from a test-only module of this
// repository (a go.mod that pins a peer, as test/cluster/components pins
// Kubernetes), cached like the control plane.
type ModuleBinary struct {
	// Name is the binary's file name and part of the cache directory's.
	Name string
	// ModuleDir is the module's directory; its go.mod, go.sum and every
	// .go file in it are hashed into the cache key.
	ModuleDir string
	// Package is the package path to build, as `go build` takes it.
	Package string
	// LDFlags are passed to go build -ldflags.
	LDFlags string
}

// BuildModuleBinary returns m's binary, building it on first use into
// CacheRoot()/<name>-<key>: the key hashes the Go toolchain and platform,
// the module's pins and sources, the package and the flags, so a changed
// pin builds again and nothing else does. One build at a time per binary,
// as Build; progress goes to log.
func BuildModuleBinary(ctx context.Context, log io.Writer, m ModuleBinary) (string, error) {
	if log == nil {
		log = io.Discard
	}
	goVersion, err := goEnv(ctx, "GOVERSION")
	if err != nil {
		return "", err
	}
	files, err := moduleInputs(m.ModuleDir)
	if err != nil {
		return "", fmt.Errorf("read the module %s: %w", m.ModuleDir, err)
	}
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, m.Name+"-"+moduleKey(goVersion, m, files))
	bin := filepath.Join(dir, m.Name)
	if fileExists(filepath.Join(dir, buildInfoFile)) {
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
	if fileExists(filepath.Join(dir, buildInfoFile)) {
		return bin, nil
	}
	fmt.Fprintf(log, "build: %s from %s (%s) into %s\n", m.Name, m.ModuleDir, goVersion, dir)
	start := time.Now()
	tmp := bin + ".tmp"
	// GOWORK=off: the module is built with its own pins only.
	if err := runGo(ctx, m.ModuleDir, []string{"GOWORK=off"}, log, m.Name, "build", "-v", "-ldflags", m.LDFlags, "-o", tmp, m.Package); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	info, err := json.MarshalIndent(map[string]string{"goVersion": goVersion, "package": m.Package, "seconds": fmt.Sprintf("%.0f", time.Since(start).Seconds())}, "", "  ")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(log, "build: %s done in %s\n", m.Name, time.Since(start).Round(time.Second))
	return bin, os.WriteFile(filepath.Join(dir, buildInfoFile), append(info, '\n'), 0o644)
}

// moduleInputs reads go.mod, go.sum and the .go files at the top of dir.
func moduleInputs(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range entries {
		name := e.Name()
		input := name == "go.mod" || name == "go.sum" || strings.HasSuffix(name, ".go")
		if e.IsDir() || !input {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		files[name] = b
	}
	if _, ok := files["go.mod"]; !ok {
		return nil, fmt.Errorf("no go.mod in %s", dir)
	}
	return files, nil
}

func moduleKey(goVersion string, m ModuleBinary, files map[string][]byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe=module-binary-1\ngo=%s\nplatform=%s/%s\npackage=%s\nldflags=%s\n", goVersion, runtime.GOOS, runtime.GOARCH, m.Package, m.LDFlags)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(h, "file=%s %x\n", name, sha256.Sum256(files[name]))
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}
