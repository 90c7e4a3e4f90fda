package release

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// How much of the release matrix one run builds.
//
// Cross-compiling the plugin for all six targets is most of this test's cost
// on a machine with a cold Go build cache (~18 of its ~25 minutes on two busy
// cores: every target compiles client-go, kubectl and their dependencies
// again), and nearly nothing once those are cached. Most of what the matrix
// proves depends only on the release configuration: that goreleaser makes an
// archive per target with the binary, LICENSE and the completion helper, that
// plugins/krew.yaml has exactly one platform per archive with the right
// selector and bin, and that krew installs each. Those inputs rarely change.
// What ordinary commits can break elsewhere is the compile: code that only
// builds on Linux (a syscall, a signal, a Unix-only package).
//
// So a run builds the whole matrix when it is cheap or needed, and otherwise
// keeps each guarantee the cheaper way:
//
//   - full matrix when this machine's Go build cache already holds every
//     target's dependencies (a marker written after a full run, keyed by
//     go.sum, the Go version and GOCACHE), or when the release inputs below
//     differ from HEAD's first parent (a merge brings its whole branch's
//     changes) or from the working tree, or when git cannot tell;
//   - otherwise the host target only, end to end through goreleaser and
//     krew install, plus: the other targets' archives derived from the
//     goreleaser config and checked against plugins/krew.yaml both ways, and
//     a compile of the plugin for one architecture of every other OS (the
//     plugin has no architecture-specific code and CGO is off, so what can
//     break per target is the OS; per-architecture files live in
//     dependencies such as golang.org/x/sys, which test them themselves).
//     The skipped subtest of krew's per-platform install says so, and
//     hack/test.sh's release line lists it.
//
// AGENTKERNEL_RELEASE_MATRIX=full|host overrides the choice;
// AGENTKERNEL_RELEASE_TARGETS picks goreleaser targets by hand.
const matrixEnv = "AGENTKERNEL_RELEASE_MATRIX"

// releaseInputs decide what the release matrix proves besides the compile.
var releaseInputs = []string{
	".goreleaser.yaml", "plugins/krew.yaml", "LICENSE", "kubectl_complete-agentkernel",
	"go.mod", "go.sum", // a new dependency may not build everywhere
	"hack/tools.sh", // goreleaser's and krew's pins
	"test/release",
}

// releasePlan is what one run builds, and why.
type releasePlan struct {
	targets string // goreleaser targets, comma separated; "" = the whole matrix
	why     string
	// matrixMarker is written once the whole matrix passed ("" when only
	// part of it is built).
	matrixMarker string
}

func planRelease(t *testing.T, root string) releasePlan {
	t.Helper()
	if targets := os.Getenv(targetsEnv); targets != "" {
		return releasePlan{targets: targets, why: targetsEnv + " is set"}
	}
	marker := matrixMarker(t, root)
	full := func(why string) releasePlan { return releasePlan{why: why, matrixMarker: marker} }
	host := func(why string) releasePlan { return releasePlan{targets: hostTarget(t), why: why} }
	switch m := os.Getenv(matrixEnv); m {
	case "full":
		return full(matrixEnv + "=full")
	case "host":
		return host(matrixEnv + "=host")
	case "", "auto":
	default:
		t.Fatalf("%s=%q: want full, host or auto", matrixEnv, m)
	}
	if _, err := os.Stat(marker); err == nil {
		return full("this machine's Go build cache holds every target's dependencies (" + marker + "): the whole matrix is cheap")
	}
	if changed, why := releaseInputsChanged(t, root); changed {
		return full(why)
	}
	return host("the release inputs are as in HEAD^ and this machine has not cross-compiled this go.sum yet")
}

// hostTarget is goreleaser's target name for this machine.
func hostTarget(t *testing.T) string {
	switch runtime.GOARCH {
	case "amd64":
		return runtime.GOOS + "_amd64_v1"
	case "arm64":
		return runtime.GOOS + "_arm64_v8.0"
	}
	t.Fatalf("no goreleaser target name known for %s/%s: set %s", runtime.GOOS, runtime.GOARCH, targetsEnv)
	return ""
}

// releaseInputsChanged reports whether the working tree or HEAD (against its
// first parent) changes a release input; when git cannot tell, it says so
// and counts that as changed.
func releaseInputsChanged(t *testing.T, root string) (bool, string) {
	t.Helper()
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(t.Context(), "git", append([]string{"-C", root}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	inputs := strings.Join(releaseInputs, " ")
	if out, err := git(append([]string{"status", "--porcelain", "--"}, releaseInputs...)...); err != nil {
		return true, "git status failed (" + err.Error() + "): cannot tell whether the release inputs changed"
	} else if out != "" {
		return true, "uncommitted changes to the release inputs:\n" + out
	}
	if _, err := git("rev-parse", "--verify", "-q", "HEAD^"); err != nil {
		return true, "HEAD has no parent in this clone (a root commit or a shallow clone): cannot tell what it changed in " + inputs
	}
	out, err := git(append([]string{"diff", "--name-only", "HEAD^", "HEAD", "--"}, releaseInputs...)...)
	if err != nil {
		return true, "git diff HEAD^ HEAD failed (" + err.Error() + ")"
	}
	if out != "" {
		return true, "HEAD changes release inputs since HEAD^: " + strings.ReplaceAll(out, "\n", ", ")
	}
	return false, ""
}

// matrixMarker is the file that says this machine's Go build cache holds the
// plugin's dependencies compiled for every release target.
func matrixMarker(t *testing.T, root string) string {
	t.Helper()
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := exec.CommandContext(t.Context(), "go", "env", "GOVERSION", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	h := sha256.New()
	h.Write(sum)
	h.Write(env)
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(base, "kubectl-agentkernel", "release", "matrix-"+hex.EncodeToString(h.Sum(nil))[:16])
}

// target is one os/arch pair of .goreleaser.yaml, with its archive's extension.
type target struct{ OS, Arch, Ext string }

// configTargets reads the build matrix and archive formats of
// .goreleaser.yaml. It models goos × goarch and format_overrides by goos, the
// parts this project uses; anything else must go through the full matrix.
func configTargets(config []byte) ([]target, error) {
	var c struct {
		Builds   []map[string]any `json:"builds"`
		Archives []struct {
			Formats         []string `json:"formats"`
			FormatOverrides []struct {
				GOOS    string   `json:"goos"`
				Formats []string `json:"formats"`
			} `json:"format_overrides"`
		} `json:"archives"`
	}
	if err := yaml.Unmarshal(config, &c); err != nil {
		return nil, err
	}
	if len(c.Builds) != 1 || len(c.Archives) != 1 {
		return nil, fmt.Errorf("%d builds and %d archives: the static check models one of each; set %s=full", len(c.Builds), len(c.Archives), matrixEnv)
	}
	for _, key := range []string{"targets", "ignore", "goarm", "goamd64", "goarm64"} {
		if _, ok := c.Builds[0][key]; ok {
			return nil, fmt.Errorf("builds[0].%s is set: the static check models goos × goarch only; set %s=full", key, matrixEnv)
		}
	}
	list := func(key string) []string {
		var out []string
		items, _ := c.Builds[0][key].([]any)
		for _, v := range items {
			out = append(out, fmt.Sprint(v))
		}
		return out
	}
	ext := func(formats []string) string {
		if len(formats) == 0 {
			return ".tar.gz" // goreleaser's default
		}
		return "." + formats[0]
	}
	var targets []target
	for _, goos := range list("goos") {
		e := ext(c.Archives[0].Formats)
		for _, o := range c.Archives[0].FormatOverrides {
			if o.GOOS == goos {
				e = ext(o.Formats)
			}
		}
		for _, arch := range list("goarch") {
			targets = append(targets, target{OS: goos, Arch: arch, Ext: e})
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("no goos × goarch in builds[0]")
	}
	return targets, nil
}

// deriveArchives names the archives goreleaser would build for the targets
// this run did not, from the name of one it did build: only os, arch and the
// extension differ between them.
func deriveArchives(built []archive, targets []target) ([]archive, error) {
	if len(built) == 0 {
		return nil, fmt.Errorf("no archive built to derive the others from")
	}
	ext := map[string]string{}
	for _, tg := range targets {
		ext[tg.OS+"/"+tg.Arch] = tg.Ext
	}
	model := built[0]
	suffix := "_" + model.OS + "_" + model.Arch + ext[model.OS+"/"+model.Arch]
	if !strings.HasSuffix(model.Name, suffix) {
		return nil, fmt.Errorf("archive %s does not end in %s: cannot derive the other targets' names from it; set %s=full", model.Name, suffix, matrixEnv)
	}
	stem := strings.TrimSuffix(model.Name, suffix)
	all := slices.Clone(built)
	for _, tg := range targets {
		if slices.ContainsFunc(built, func(a archive) bool { return a.OS == tg.OS && a.Arch == tg.Arch }) {
			continue
		}
		all = append(all, archive{Name: stem + "_" + tg.OS + "_" + tg.Arch + tg.Ext, OS: tg.OS, Arch: tg.Arch})
	}
	return all, nil
}

// crossCompileTargets picks one architecture per OS the run did not build:
// this machine's architecture where the matrix has it.
func crossCompileTargets(targets []target, built []archive) []target {
	var picked []target
	for _, tg := range targets {
		if slices.ContainsFunc(built, func(a archive) bool { return a.OS == tg.OS }) ||
			slices.ContainsFunc(picked, func(p target) bool { return p.OS == tg.OS }) {
			continue
		}
		best := tg
		for _, other := range targets {
			if other.OS == tg.OS && other.Arch == runtime.GOARCH {
				best = other
			}
		}
		picked = append(picked, best)
	}
	return picked
}

// crossCompile builds the plugin the way .goreleaser.yaml does (CGO off,
// -trimpath), so the compiled dependencies serve a later full matrix too.
func crossCompile(t *testing.T, root string, tg target) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-o", os.DevNull, "./cmd/kubectl-agentkernel")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+tg.OS, "GOARCH="+tg.Arch, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the plugin does not build for %s/%s: %v\n%s", tg.OS, tg.Arch, err, out)
	}
}

func TestConfigTargetsAndDerivedArchives(t *testing.T) {
	config, err := os.ReadFile("../../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	targets, err := configTargets(config)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range targets {
		got = append(got, tg.OS+"/"+tg.Arch+tg.Ext)
	}
	want := "linux/amd64.tar.gz linux/arm64.tar.gz darwin/amd64.tar.gz darwin/arm64.tar.gz windows/amd64.zip windows/arm64.zip"
	if strings.Join(got, " ") != want {
		t.Errorf(".goreleaser.yaml targets: %s, want %s", strings.Join(got, " "), want)
	}

	built := []archive{{Name: "kubectl-agentkernel_v0.0.0_linux_amd64.tar.gz", OS: "linux", Arch: "amd64"}}
	all, err := deriveArchives(built, targets)
	if err != nil {
		t.Fatal(err)
	}
	if names := names(all); names != "kubectl-agentkernel_v0.0.0_darwin_amd64.tar.gz, kubectl-agentkernel_v0.0.0_darwin_arm64.tar.gz, kubectl-agentkernel_v0.0.0_linux_amd64.tar.gz, kubectl-agentkernel_v0.0.0_linux_arm64.tar.gz, kubectl-agentkernel_v0.0.0_windows_amd64.zip, kubectl-agentkernel_v0.0.0_windows_arm64.zip" {
		t.Errorf("derived archives: %s", names)
	}
	if _, err := deriveArchives([]archive{{Name: "kubectl-agentkernel_v0.0.0_Linux_x86_64.tar.gz", OS: "linux", Arch: "amd64"}}, targets); err == nil {
		t.Error("derived names from an archive whose name does not end in _linux_amd64.tar.gz")
	}

	var cross []string
	for _, tg := range crossCompileTargets(targets, built) {
		cross = append(cross, tg.OS+"/"+tg.Arch)
	}
	wantCross := "darwin/" + runtime.GOARCH + " windows/" + runtime.GOARCH
	if strings.Join(cross, " ") != wantCross {
		t.Errorf("cross-compile targets %v, want %s", cross, wantCross)
	}

	for name, edit := range map[string]string{
		"ignore": "builds:\n  - goos: [linux]\n    goarch: [amd64]\n    ignore: [{goos: linux}]\narchives:\n  - formats: [tar.gz]\n",
		"none":   "builds:\n  - main: .\narchives:\n  - formats: [tar.gz]\n",
		"two":    "builds:\n  - goos: [linux]\n    goarch: [amd64]\n  - goos: [darwin]\n    goarch: [arm64]\narchives:\n  - formats: [tar.gz]\n",
	} {
		if _, err := configTargets([]byte(edit)); err == nil {
			t.Errorf("%s: configTargets accepted a config it does not model", name)
		}
	}
}

func TestReleaseInputsChanged(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git:", err)
	}
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.test", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.test", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(name, content string) {
		t.Helper()
		writeFile(t, filepath.Join(repo, name), []byte(content))
	}
	changed := func(want bool, wantWhy string) {
		t.Helper()
		got, why := releaseInputsChanged(t, repo)
		if got != want || !strings.Contains(why, wantWhy) {
			t.Errorf("releaseInputsChanged = %v, %q; want %v, containing %q", got, why, want, wantWhy)
		}
	}
	git("init", "-q")
	write(".goreleaser.yaml", "version: 2\n")
	write("README.md", "one\n")
	git("add", ".")
	git("commit", "-q", "-m", "root")
	changed(true, "HEAD has no parent")

	write("README.md", "two\n")
	git("commit", "-q", "-am", "docs only")
	changed(false, "")

	write(".goreleaser.yaml", "version: 2\nproject_name: x\n")
	changed(true, "uncommitted changes to the release inputs")
	git("commit", "-q", "-am", "release config")
	changed(true, "HEAD changes release inputs since HEAD^: .goreleaser.yaml")

	write("test/release/new_test.go", "package release\n")
	changed(true, "uncommitted changes to the release inputs")
}
