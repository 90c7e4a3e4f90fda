package localcluster

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Versions of what Build produces. Changing one changes the cache key.
const (
	KubernetesVersion = "v1.37.2"
	KwokVersion       = "v0.8.0"
	kwokModule        = "sigs.k8s.io/kwok"

	// recipeVersion names the build recipe below; bump it when a change to
	// this file changes the binaries without changing any hashed input.
	recipeVersion = "localcluster-build-1"
)

// Binaries are the executables of one build, all in Dir.
type Binaries struct {
	Dir               string
	Etcd              string
	APIServer         string
	ControllerManager string
	Scheduler         string
	Kubectl           string
	Kwok              string
	// Kubelet is built for a real node that joins the control plane later;
	// the harness itself never runs it.
	Kubelet string
}

// kwokStagesFile holds kwok's default node and pod stages, taken from the
// kwok module source at build time (kwok refuses to start without stages).
const kwokStagesFile = "kwok-stages.yaml"

// buildInfoFile is written last into a build directory: a directory
// without it is not a finished build.
const buildInfoFile = "build-info.json"

// component is one binary built from the components module.
type component struct {
	name string // output file name
	pkg  string // package path, relative to the components module
}

// components are built in this order: etcd first because it is small and
// shares little, so a broken toolchain fails fast.
var components = []component{
	{"etcd", "./etcd"},
	{"kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"},
	{"kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"},
	{"kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"},
	{"kubectl", "k8s.io/kubernetes/cmd/kubectl"},
	{"kubelet", "k8s.io/kubernetes/cmd/kubelet"},
}

// kubeLDFlags makes /version and `kubectl version` report KubernetesVersion
// instead of v0.0.0-master+$Format:%H$. -s -w only shrink the binaries and
// do not change compiled packages, so the build cache is shared with plain
// `go build` runs of the same packages.
func kubeLDFlags() string {
	vars := map[string]string{
		"gitVersion":   KubernetesVersion,
		"gitMajor":     "1",
		"gitMinor":     "37",
		"gitTreeState": "clean",
	}
	flags := []string{"-s", "-w"}
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		for _, name := range []string{"gitVersion", "gitMajor", "gitMinor", "gitTreeState"} {
			flags = append(flags, "-X", pkg+"."+name+"="+vars[name])
		}
	}
	return strings.Join(flags, " ")
}

// kwokStageSources are kwok's default stages, relative to its module root:
// fast node initialisation plus lease heartbeats, and the fast pod lifecycle.
var kwokStageSources = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"kustomize/stage/pod/fast/pod-ready.yaml",
	"kustomize/stage/pod/fast/pod-complete.yaml",
	"kustomize/stage/pod/fast/pod-delete.yaml",
}

// sourceTree locates the files the build is made from.
type sourceTree struct {
	componentsDir string // the test/cluster/components module
	kwokPatch     string // test/cluster/kwok/kwok.patch
}

// findSourceTree finds test/cluster in this package's source directory
// (go test and go run keep it) or, failing that, above the working directory.
func findSourceTree() (sourceTree, error) {
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Dir(filepath.Dir(file)))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			candidates = append(candidates, filepath.Join(dir, "test", "cluster"))
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, c := range candidates {
		t := sourceTree{
			componentsDir: filepath.Join(c, "components"),
			kwokPatch:     filepath.Join(c, "kwok", "kwok.patch"),
		}
		if fileExists(filepath.Join(t.componentsDir, "go.mod")) && fileExists(t.kwokPatch) {
			return t, nil
		}
	}
	return sourceTree{}, errors.New("cannot find test/cluster/components/go.mod and test/cluster/kwok/kwok.patch; run from inside the kubectl-agentkernel repository")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// cacheKey hashes every input that decides the bytes of the binaries: the
// components module's dependency pins and sources, the kwok patch, the Go
// toolchain and platform, and the recipe (ldflags, package list, stages).
func cacheKey(goVersion string, files map[string][]byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe=%s\ngo=%s\nplatform=%s/%s\nkube=%s\nkwok=%s\nldflags=%s\n",
		recipeVersion, goVersion, runtime.GOOS, runtime.GOARCH, KubernetesVersion, KwokVersion, kubeLDFlags())
	for _, c := range components {
		fmt.Fprintf(h, "component=%s %s\n", c.name, c.pkg)
	}
	for _, s := range kwokStageSources {
		fmt.Fprintf(h, "stage=%s\n", s)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		sum := sha256.Sum256(files[name])
		fmt.Fprintf(h, "file=%s %x\n", name, sum)
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

// keyInputs reads the hashed source files of t.
func keyInputs(t sourceTree) (map[string][]byte, error) {
	files := map[string][]byte{}
	add := func(name, path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[name] = b
		return nil
	}
	for _, name := range []string{"go.mod", "go.sum", "tools.go", "etcd/main.go"} {
		if err := add("components/"+name, filepath.Join(t.componentsDir, filepath.FromSlash(name))); err != nil {
			return nil, err
		}
	}
	if err := add("kwok/kwok.patch", t.kwokPatch); err != nil {
		return nil, err
	}
	return files, nil
}

// CacheRoot is where builds are kept:
// ${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-agentkernel/cluster.
func CacheRoot() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user cache directory (set XDG_CACHE_HOME or HOME): %w", err)
	}
	return filepath.Join(base, "kubectl-agentkernel", "cluster"), nil
}

func binariesIn(dir string) *Binaries {
	return &Binaries{
		Dir:               dir,
		Etcd:              filepath.Join(dir, "etcd"),
		APIServer:         filepath.Join(dir, "kube-apiserver"),
		ControllerManager: filepath.Join(dir, "kube-controller-manager"),
		Scheduler:         filepath.Join(dir, "kube-scheduler"),
		Kubectl:           filepath.Join(dir, "kubectl"),
		Kwok:              filepath.Join(dir, "kwok"),
		Kubelet:           filepath.Join(dir, "kubelet"),
	}
}

// buildInfo is recorded in each build directory.
type buildInfo struct {
	Key        string            `json:"key"`
	GoVersion  string            `json:"goVersion"`
	Kubernetes string            `json:"kubernetes"`
	Kwok       string            `json:"kwok"`
	Seconds    map[string]string `json:"buildSeconds"`
	Finished   time.Time         `json:"finished"`
}

// Build returns the control-plane binaries, building them on first use into
// CacheRoot()/<key> (key: see cacheKey). A cold build takes about 25 minutes
// on 2 cores; with a warm Go build cache about a minute. Progress goes to log.
func Build(ctx context.Context, log io.Writer) (*Binaries, error) {
	if log == nil {
		log = io.Discard
	}
	plan, err := planBuild(ctx)
	if err != nil {
		return nil, err
	}
	tree, goVersion, key, root, final := plan.tree, plan.goVersion, plan.key, plan.root, plan.dir
	if plan.done() {
		return binariesIn(final), nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}

	// One build at a time per cache root: a second `build` waits and then
	// finds the finished directory instead of compiling everything again.
	unlock, err := lockFile(ctx, filepath.Join(root, ".lock"), log)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if fileExists(filepath.Join(final, buildInfoFile)) {
		return binariesIn(final), nil
	}

	fmt.Fprintf(log, "build: control plane %s + kwok %s (%s) into %s\n", KubernetesVersion, KwokVersion, goVersion, final)
	fmt.Fprintf(log, "build: a cold build takes ~25 min on 2 cores; with a warm Go build cache ~1 min\n")
	tmp, err := os.MkdirTemp(root, ".build-"+key+"-")
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}

	info := buildInfo{Key: key, GoVersion: goVersion, Kubernetes: KubernetesVersion, Kwok: KwokVersion, Seconds: map[string]string{}}
	start := time.Now()
	for i, c := range components {
		t0 := time.Now()
		fmt.Fprintf(log, "build: [%d/%d] %s\n", i+1, len(components)+1, c.name)
		args := []string{"build", "-v", "-ldflags", kubeLDFlags(), "-o", filepath.Join(tmp, c.name), c.pkg}
		if err := runGo(ctx, tree.componentsDir, nil, log, c.name, args...); err != nil {
			return nil, err
		}
		info.Seconds[c.name] = fmt.Sprintf("%.0f", time.Since(t0).Seconds())
		fmt.Fprintf(log, "build: [%d/%d] %s done in %s\n", i+1, len(components)+1, c.name, time.Since(t0).Round(time.Second))
	}

	t0 := time.Now()
	fmt.Fprintf(log, "build: [%d/%d] kwok %s with %s\n", len(components)+1, len(components)+1, KwokVersion, tree.kwokPatch)
	// The patch as hashed, kept with the binaries it was built into.
	usedPatch := filepath.Join(tmp, "kwok.patch")
	if err := os.WriteFile(usedPatch, plan.patch, 0o644); err != nil {
		return nil, err
	}
	if err := buildKwok(ctx, usedPatch, tmp, log); err != nil {
		return nil, err
	}
	info.Seconds["kwok"] = fmt.Sprintf("%.0f", time.Since(t0).Seconds())
	fmt.Fprintf(log, "build: [%d/%d] kwok done in %s\n", len(components)+1, len(components)+1, time.Since(t0).Round(time.Second))

	info.Finished = time.Now().UTC()
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, buildInfoFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	// A half-finished directory from a killed build has no build-info.json:
	// replace it.
	if fileExists(final) {
		if err := os.RemoveAll(final); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, err
	}
	keep = true
	fmt.Fprintf(log, "build: all done in %s: %s\n", time.Since(start).Round(time.Second), final)
	return binariesIn(final), nil
}

// buildPlan is where the build for the current inputs lives.
type buildPlan struct {
	tree      sourceTree
	goVersion string
	key       string
	patch     []byte // the kwok patch as hashed into key
	root      string // CacheRoot()
	dir       string // root/key
}

func (p buildPlan) done() bool { return fileExists(filepath.Join(p.dir, buildInfoFile)) }

func planBuild(ctx context.Context) (buildPlan, error) {
	tree, err := findSourceTree()
	if err != nil {
		return buildPlan{}, err
	}
	goVersion, err := goEnv(ctx, "GOVERSION")
	if err != nil {
		return buildPlan{}, err
	}
	files, err := keyInputs(tree)
	if err != nil {
		return buildPlan{}, err
	}
	root, err := CacheRoot()
	if err != nil {
		return buildPlan{}, err
	}
	key := cacheKey(goVersion, files)
	return buildPlan{tree: tree, goVersion: goVersion, key: key, patch: files["kwok/kwok.patch"], root: root, dir: filepath.Join(root, key)}, nil
}

// Built returns the binaries if the current inputs are already built, and
// nil otherwise; it never compiles anything.
func Built(ctx context.Context) (*Binaries, error) {
	plan, err := planBuild(ctx)
	if err != nil || !plan.done() {
		return nil, err
	}
	return binariesIn(plan.dir), nil
}

// buildKwok copies the kwok module source, applies patch and builds
// cmd/kwok into out; it also extracts kwok's default stages.
func buildKwok(ctx context.Context, patch, out string, log io.Writer) error {
	dl := struct {
		Dir   string
		Error string
	}{}
	downloadDir, err := os.MkdirTemp("", "kwok-download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(downloadDir)
	var stdout strings.Builder
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", kwokModule+"@"+KwokVersion)
	cmd.Dir = downloadDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GO111MODULE=on", "GOFLAGS=-mod=mod")
	cmd.Stdout = &stdout
	cmd.Stderr = log
	runErr := cmd.Run()
	_ = json.Unmarshal([]byte(stdout.String()), &dl)
	if runErr != nil || dl.Error != "" || dl.Dir == "" {
		return fmt.Errorf("go mod download %s@%s: %v %s", kwokModule, KwokVersion, runErr, dl.Error)
	}

	// A fixed path (we hold the cache lock): compiled packages of the main
	// module are cached by source directory, so a rebuild of the same patch
	// only links.
	src := filepath.Join(filepath.Dir(out), ".kwok-src")
	if err := os.RemoveAll(src); err != nil {
		return err
	}
	if err := copyTree(dl.Dir, src); err != nil {
		return fmt.Errorf("copy kwok source: %w", err)
	}
	defer os.RemoveAll(src)
	if err := applyPatch(ctx, src, patch, log); err != nil {
		return err
	}
	env := []string{"GOWORK=off"}
	if err := runGo(ctx, src, env, log, "kwok", "build", "-v", "-ldflags", "-s -w", "-o", filepath.Join(out, "kwok"), "./cmd/kwok"); err != nil {
		return err
	}

	var stages strings.Builder
	for i, s := range kwokStageSources {
		b, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(s)))
		if err != nil {
			return fmt.Errorf("read kwok stage: %w", err)
		}
		if i > 0 {
			stages.WriteString("---\n")
		}
		fmt.Fprintf(&stages, "# %s@%s %s\n", kwokModule, KwokVersion, s)
		stages.Write(b)
		if !strings.HasSuffix(stages.String(), "\n") {
			stages.WriteString("\n")
		}
	}
	return os.WriteFile(filepath.Join(out, kwokStagesFile), []byte(stages.String()), 0o644)
}

// applyPatch applies a unified diff with git apply (patch(1) as fallback).
func applyPatch(ctx context.Context, dir, patch string, log io.Writer) error {
	var tries [][]string
	if _, err := exec.LookPath("git"); err == nil {
		tries = append(tries, []string{"git", "apply", "-p1", "--whitespace=nowarn", patch})
	}
	if _, err := exec.LookPath("patch"); err == nil {
		tries = append(tries, []string{"patch", "-p1", "--forward", "--batch", "-i", patch})
	}
	if len(tries) == 0 {
		return errors.New("neither git nor patch is installed: one is needed to patch kwok (apt-get install git)")
	}
	var out strings.Builder
	cmd := exec.CommandContext(ctx, tries[0][0], tries[0][1:]...)
	cmd.Dir = dir
	// Keep git from finding a repository above the copy and applying the
	// patch relative to that repository's root.
	cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apply %s to kwok %s: %v\n%s", patch, KwokVersion, err, out.String())
	}
	fmt.Fprintf(log, "build: applied %s\n", filepath.Base(patch))
	return nil
}

// copyTree copies regular files and directories from src to dst, writable
// by the owner (the module cache is read-only).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			return copyFile(path, target, mode)
		default:
			return nil
		}
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// runGo runs the go command in dir and turns `go build -v` package lines
// into a progress line every 30 s; the full output is kept for errors.
func runGo(ctx context.Context, dir string, env []string, log io.Writer, what string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	var (
		compiled atomic.Int64
		last     atomic.Value
		output   strings.Builder
	)
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if isPackageLine(line) {
				compiled.Add(1)
				last.Store(line)
				continue
			}
			output.WriteString(line + "\n")
		}
	}()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		<-scanDone
		return fmt.Errorf("start go %s: %w", strings.Join(args, " "), err)
	}
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-waitDone:
			pw.Close()
			<-scanDone
			if err != nil {
				return fmt.Errorf("build %s: go %s: %v\n%s", what, strings.Join(args, " "), err, output.String())
			}
			return nil
		case <-tick.C:
			latest, _ := last.Load().(string)
			fmt.Fprintf(log, "build:   %s: %s elapsed, %d packages compiled (latest %s)\n",
				what, time.Since(start).Round(time.Second), compiled.Load(), latest)
		}
	}
}

// isPackageLine tells `go build -v` package names from messages.
func isPackageLine(line string) bool {
	return line != "" && !strings.ContainsAny(line, " \t:") && !strings.HasPrefix(line, "#")
}

func goEnv(ctx context.Context, name string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s (is the go command on PATH?): %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// lockFile takes an exclusive flock on path, waiting (and saying so) while
// another process holds it.
func lockFile(ctx context.Context, path string, log io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !said {
			fmt.Fprintf(log, "build: waiting for another build holding %s\n", path)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
