// Package release tests the way users get the plugin: a goreleaser snapshot
// of .goreleaser.yaml, the krew manifest rendered from plugins/krew.yaml with
// the archives' real sha256, krew's own validator, and a real
// `kubectl krew install` followed by kubectl's plugin lookup and completion.
//
// It needs KUBECTL (a kubectl >= 1.26 binary); goreleaser, krew and
// validate-krew-manifest are installed at pinned versions by hack/tools.sh.
// How much of the six-target matrix a run builds: see matrix_test.go.
//
//	KUBECTL=/path/to/kubectl go test -timeout 60m ./test/release/
package release

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const (
	pluginName = "agentkernel"
	// targetsEnv, if set, builds only these goreleaser targets (comma
	// separated, e.g. linux_amd64_v1) instead of the whole release matrix.
	targetsEnv = "AGENTKERNEL_RELEASE_TARGETS"
)

func TestReleaseInstallsWithKrew(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the release test in -short mode: it builds a goreleaser snapshot and installs it with krew, which takes minutes")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the release test drives kubectl and krew through a Unix PATH and shell scripts")
	}
	kubectl := kubectlFromEnv(t)
	root := repoRoot(t)
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) < 45*time.Minute {
		t.Logf("go test -timeout leaves %s; on a machine with no tools or build cache yet this test can take 40 minutes: use -timeout 60m", time.Until(deadline).Round(time.Minute))
	}
	tmp := t.TempDir()

	goreleaser := tool(t, root, "goreleaser")
	krew := tool(t, root, "krew")
	validator := tool(t, root, "validate-krew-manifest")

	// kubectl finds plugins, and the completion helper finds kubectl, by
	// name on PATH: give them a PATH with exactly the binaries under test.
	binDir := filepath.Join(tmp, "bin")
	mkdir(t, binDir)
	symlink(t, kubectl, filepath.Join(binDir, "kubectl"))
	symlink(t, krew, filepath.Join(binDir, "kubectl-krew"))
	home := filepath.Join(tmp, "home") // keeps the user's kubeconfig and kuberc out
	mkdir(t, home)

	plan := planRelease(t, root)
	partial := plan.targets != ""
	if partial {
		t.Logf("building the release target(s) %s only: %s", plan.targets, plan.why)
	} else {
		t.Logf("building the whole release matrix: %s", plan.why)
		t.Cleanup(func() {
			if !t.Failed() {
				// Every target's dependencies are in the Go build cache now:
				// later runs build the whole matrix for little.
				_ = os.MkdirAll(filepath.Dir(plan.matrixMarker), 0o755)
				_ = os.WriteFile(plan.matrixMarker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
			}
		})
	}
	rel := buildSnapshot(t, root, goreleaser, filepath.Join(tmp, "dist"), plan.targets)
	t.Logf("goreleaser built %s (version %s, commit %s): %s", rel.Tag, rel.Version, rel.Commit, names(rel.Archives))

	t.Run("every archive holds the binary, LICENSE and the completion helper", func(t *testing.T) {
		for _, a := range rel.Archives {
			entries, err := archiveEntries(a.Path)
			if err != nil {
				t.Fatalf("%s: %v", a.Name, err)
			}
			for _, want := range []string{binaryName(a.OS), "LICENSE", "kubectl_complete-agentkernel"} {
				mode, ok := entries[want]
				if !ok {
					t.Errorf("%s has no %s; it holds %v", a.Name, want, keys(entries))
					continue
				}
				if want != "LICENSE" && a.OS != "windows" && mode&0o111 == 0 {
					t.Errorf("%s: %s is not executable (mode %v)", a.Name, want, mode)
				}
			}
		}
	})

	t.Run("checksums.txt lists every archive", func(t *testing.T) {
		for _, a := range rel.Archives {
			if got := rel.Checksums[a.Name]; got != a.SHA256 {
				t.Errorf("checksums.txt has %q for %s, the file's sha256 is %s", got, a.Name, a.SHA256)
			}
		}
	})

	tmpl, err := os.ReadFile(filepath.Join(root, "plugins", "krew.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]archive{}
	for _, a := range rel.Archives {
		byName[a.Name] = a
	}
	// The manifest as krew-release-bot would render it on this tag: the
	// GitHub release URLs, with the sha256 of the archives just built.
	released := renderTo(t, tmpl, rel.Tag, filepath.Join(tmp, "released", pluginName+".yaml"), func(url string) (string, string, error) {
		if a, ok := byName[path.Base(url)]; ok {
			return url, a.SHA256, nil
		}
		if partial {
			return url, placeholderSHA256, nil // not built in this run
		}
		return "", "", fmt.Errorf("plugins/krew.yaml downloads %s, but goreleaser built only: %s", path.Base(url), names(rel.Archives))
	})

	t.Run("plugins/krew.yaml has one platform per archive", func(t *testing.T) {
		m, err := parseManifest(readFile(t, released))
		if err != nil {
			t.Fatal(err)
		}
		archives := rel.Archives
		if partial {
			// The targets not built this run, named from the config the
			// way goreleaser names the ones it built: the check still
			// runs both ways over the whole matrix.
			targets, err := configTargets(readFile(t, filepath.Join(root, ".goreleaser.yaml")))
			if err != nil {
				t.Fatal(err)
			}
			if archives, err = deriveArchives(rel.Archives, targets); err != nil {
				t.Fatal(err)
			}
		}
		if m.Metadata.Name != pluginName || m.Spec.Version != rel.Tag {
			t.Errorf("rendered manifest is %s %s, want %s %s", m.Metadata.Name, m.Spec.Version, pluginName, rel.Tag)
		}
		for _, p := range m.Spec.Platforms {
			if want := "https://github.com/agentkernel/kubectl-agentkernel/releases/download/" + rel.Tag + "/"; !strings.HasPrefix(p.URI, want) {
				t.Errorf("platform URI %s is not under %s", p.URI, want)
			}
		}
		for _, p := range checkArchivesMatchPlatforms(archives, m) {
			t.Error(p)
		}
	})

	if partial {
		t.Run("the plugin compiles for every other OS of the matrix", func(t *testing.T) {
			targets, err := configTargets(readFile(t, filepath.Join(root, ".goreleaser.yaml")))
			if err != nil {
				t.Fatal(err)
			}
			for _, tg := range crossCompileTargets(targets, rel.Archives) {
				crossCompile(t, root, tg)
				t.Logf("compiled for %s/%s", tg.OS, tg.Arch)
			}
		})
	}

	t.Run("krew's validator accepts the manifest", func(t *testing.T) {
		out, err := run(t, tmp, nil, validator, "-manifest", released, "-skip-install")
		if err != nil {
			t.Fatalf("validate-krew-manifest: %v\n%s", err, out)
		}
	})

	t.Run("krew's validator installs every platform from its archive", func(t *testing.T) {
		if partial {
			t.Skipf("only %s was built (%s): krew installs that one below; set %s=full for every platform", plan.targets, plan.why, matrixEnv)
		}
		// The validator runs `kubectl krew install --manifest` once per
		// platform (KREW_OS/KREW_ARCH) and checks LICENSE was extracted, as
		// krew-index CI does. It downloads each uri, so serve the archives on
		// loopback and point the same manifest there.
		server := httptest.NewServer(http.FileServer(http.Dir(rel.Dist)))
		defer server.Close()
		local := renderTo(t, tmpl, rel.Tag, filepath.Join(tmp, "local", pluginName+".yaml"), func(url string) (string, string, error) {
			a, ok := byName[path.Base(url)]
			if !ok {
				return "", "", fmt.Errorf("no archive %s", path.Base(url))
			}
			return server.URL + "/" + a.Name, a.SHA256, nil
		})
		out, err := run(t, tmp, []string{"PATH=" + binDir + ":" + os.Getenv("PATH"), "HOME=" + home}, validator, "-manifest", local)
		if err != nil {
			t.Fatalf("validate-krew-manifest: %v\n%s", err, out)
		}
		if want := fmt.Sprintf("all %d spec.platforms installed fine", len(rel.Archives)); !strings.Contains(out, want) {
			t.Errorf("validate-krew-manifest did not say %q:\n%s", want, out)
		}
	})

	t.Run("krew's validator refuses a manifest named for another plugin", func(t *testing.T) {
		wrong := filepath.Join(tmp, "wrong", "agent-kernel.yaml")
		writeFile(t, wrong, readFile(t, released))
		out, err := run(t, tmp, nil, validator, "-manifest", wrong, "-skip-install")
		if err == nil || !strings.Contains(out, `plugin should be named "agent-kernel", not "agentkernel"`) {
			t.Fatalf("validate-krew-manifest accepted %s (err %v):\n%s", wrong, err, out)
		}
	})

	own, ok := byName[fmt.Sprintf("kubectl-agentkernel_%s_%s_%s.tar.gz", rel.Tag, runtime.GOOS, runtime.GOARCH)]
	if !ok {
		t.Fatalf("no archive for this machine (%s/%s) among %s; build one with %s=%s_%s", runtime.GOOS, runtime.GOARCH, names(rel.Archives), targetsEnv, runtime.GOOS, runtime.GOARCH)
	}
	krewRoot := filepath.Join(tmp, "krew")
	krewEnv := func(root string) []string {
		return []string{"KREW_ROOT=" + root, "KREW_NO_UPGRADE_CHECK=1", "HOME=" + home, "PATH=" + filepath.Join(root, "bin") + ":" + binDir + ":/usr/bin:/bin"}
	}
	// What a user has after installing krew: $KREW_ROOT/bin and kubectl on
	// PATH. (sh and env for the helper script come from /usr/bin:/bin.)
	userEnv := []string{"HOME=" + home, "KUBECONFIG=" + filepath.Join(home, "no-kubeconfig"), "PATH=" + filepath.Join(krewRoot, "bin") + ":" + filepath.Join(tmp, "kubectl-only") + ":/usr/bin:/bin"}
	mkdir(t, filepath.Join(tmp, "kubectl-only"))
	symlink(t, kubectl, filepath.Join(tmp, "kubectl-only", "kubectl"))

	out, err := run(t, tmp, krewEnv(krewRoot), kubectl, "krew", "install", "--manifest="+released, "--archive="+own.Path)
	if err != nil {
		t.Fatalf("kubectl krew install --manifest=%s --archive=%s: %v\n%s", released, own.Path, err, out)
	}
	if !strings.Contains(out, "Installed plugin: "+pluginName) {
		t.Errorf("krew install did not report the plugin installed:\n%s", out)
	}

	t.Run("kubectl finds the plugin krew installed", func(t *testing.T) {
		out, err := run(t, tmp, userEnv, kubectl, "plugin", "list", "--name-only")
		if err != nil {
			t.Fatalf("kubectl plugin list: %v\n%s", err, out)
		}
		if !strings.Contains(out, "kubectl-agentkernel") {
			t.Errorf("kubectl plugin list does not show kubectl-agentkernel:\n%s", out)
		}
	})

	t.Run("kubectl agentkernel version is the snapshot's", func(t *testing.T) {
		out, err := stdout(t, tmp, userEnv, kubectl, "agentkernel", "version", "-o", "json")
		if err != nil {
			t.Fatalf("kubectl agentkernel version -o json: %v\n%s", err, out)
		}
		var got struct{ Version, Commit, Date, Platform string }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("version -o json printed %q: %v", out, err)
		}
		if want := "v" + rel.Version; got.Version != want {
			t.Errorf("version %q, want %q", got.Version, want)
		}
		if got.Commit != rel.Commit {
			t.Errorf("commit %q, want %q", got.Commit, rel.Commit)
		}
		if got.Date == "" {
			t.Error("no build date")
		}
		if want := runtime.GOOS + "/" + runtime.GOARCH; got.Platform != want {
			t.Errorf("platform %q, want %q", got.Platform, want)
		}
		out, err = stdout(t, tmp, userEnv, kubectl, "agentkernel", "version")
		if err != nil || !strings.HasPrefix(out, "kubectl-agentkernel v"+rel.Version+" (commit "+rel.Commit) {
			t.Errorf("kubectl agentkernel version (err %v) printed:\n%s", err, out)
		}
	})

	t.Run("kubectl agentkernel --help reads like kubectl", func(t *testing.T) {
		out, err := stdout(t, tmp, userEnv, kubectl, "agentkernel", "--help")
		if err != nil {
			t.Fatalf("kubectl agentkernel --help: %v\n%s", err, out)
		}
		for _, want := range []string{"Usage:\n  kubectl agentkernel [command]", "completion", "version"} {
			if !strings.Contains(out, want) {
				t.Errorf("--help lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("completion bash prints a bash completion script", func(t *testing.T) {
		out, err := stdout(t, tmp, userEnv, kubectl, "agentkernel", "completion", "bash")
		if err != nil {
			t.Fatalf("kubectl agentkernel completion bash: %v\n%s", err, out)
		}
		if !strings.HasPrefix(out, "# bash completion V2 for kubectl-agentkernel") || !strings.Contains(out, "complete -o default -F __start_kubectl-agentkernel kubectl-agentkernel") {
			t.Errorf("not a bash completion script for kubectl-agentkernel:\n%.600s", out)
		}
		bash, err := exec.LookPath("bash")
		if err != nil {
			t.Skip("no bash to check the script's syntax")
		}
		script := filepath.Join(t.TempDir(), "kubectl-agentkernel.bash")
		writeFile(t, script, []byte(out))
		if out, err := run(t, tmp, nil, bash, "-n", script); err != nil {
			t.Errorf("bash -n: %v\n%s", err, out)
		}
	})

	t.Run("kubectl completes the plugin through kubectl_complete-agentkernel", func(t *testing.T) {
		helper := filepath.Join(krewRoot, "store", pluginName, rel.Tag, "kubectl_complete-agentkernel")
		if fi, err := os.Stat(helper); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("krew did not install an executable %s: %v", helper, err)
		}
		// The helper as krew installed it, called the way kubectl calls it.
		out, err := stdout(t, tmp, userEnv, helper, "completion", "")
		if want := "bash\nzsh\nfish\npowershell\n:4\n"; err != nil || out != want {
			t.Errorf("%s completion '' (err %v) printed %q, want %q", helper, err, out, want)
		}
		// kubectl itself, with the helper copied onto PATH as the manifest's
		// caveats say: kubectl __complete is what kubectl's shell scripts run.
		copyFile(t, helper, filepath.Join(krewRoot, "bin", "kubectl_complete-agentkernel"), 0o755)
		out, err = stdout(t, tmp, userEnv, kubectl, "__complete", "agentkernel", "ver")
		if err != nil || !strings.HasPrefix(out, "version\t") || !strings.Contains(out, "\n:4\n") {
			t.Errorf("kubectl __complete agentkernel ver (err %v) printed:\n%s", err, out)
		}
		out, err = stdout(t, tmp, userEnv, kubectl, "__complete", "agentkernel", "completion", "z")
		if err != nil || !strings.HasPrefix(out, "zsh\n:4\n") {
			t.Errorf("kubectl __complete agentkernel completion z (err %v) printed:\n%s", err, out)
		}
	})

	// Bad input must fail the install, loudly, and install nothing.
	t.Run("krew install refuses an archive whose sha256 does not match", func(t *testing.T) {
		other := rel.Archives[0]
		for _, a := range rel.Archives {
			if a.Name != own.Name {
				other = a
				break
			}
		}
		wrongSum := other.SHA256
		if other.Name == own.Name { // only one archive built
			wrongSum = placeholderSHA256
		}
		bad := strings.Replace(string(readFile(t, released)), own.SHA256, wrongSum, 1)
		manifest := filepath.Join(t.TempDir(), pluginName+".yaml")
		writeFile(t, manifest, []byte(bad))
		root := filepath.Join(t.TempDir(), "krew")
		out, err := run(t, tmp, krewEnv(root), kubectl, "krew", "install", "--manifest="+manifest, "--archive="+own.Path)
		wantFailure(t, root, out, err, "checksum does not match, want: "+wrongSum+", got "+own.SHA256)
	})

	t.Run("krew install refuses an archive without the plugin binary", func(t *testing.T) {
		stripped := filepath.Join(t.TempDir(), own.Name)
		copyTarGzWithout(t, own.Path, stripped, binaryName(runtime.GOOS))
		sum := sha256File(t, stripped)
		manifest := filepath.Join(t.TempDir(), pluginName+".yaml")
		writeFile(t, manifest, []byte(strings.Replace(string(readFile(t, released)), own.SHA256, sum, 1)))
		root := filepath.Join(t.TempDir(), "krew")
		out, err := run(t, tmp, krewEnv(root), kubectl, "krew", "install", "--manifest="+manifest, "--archive="+stripped)
		wantFailure(t, root, out, err, "no files in the plugin archive matched the glob pattern=kubectl-agentkernel")
	})
}

func wantFailure(t *testing.T, krewRoot, out string, err error, wantMessage string) {
	t.Helper()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("krew install succeeded or did not run (err %v):\n%s", err, out)
	}
	if !strings.Contains(out, wantMessage) {
		t.Errorf("krew install failed without saying %q:\n%s", wantMessage, out)
	} else {
		t.Logf("krew install failed, as it should:\n%s", out)
	}
	if _, err := os.Lstat(filepath.Join(krewRoot, "bin", "kubectl-agentkernel")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed install left %s/bin/kubectl-agentkernel behind (%v)", krewRoot, err)
	}
}

// kubectlFromEnv returns $KUBECTL. The test harness builds a current kubectl;
// whatever kubectl is on PATH may be too old for plugin completion (1.26+).
func kubectlFromEnv(t *testing.T) string {
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KUBECTL is not set: CI must point it at a kubectl >= 1.26 binary (the one test/cluster builds)")
		}
		t.Skip("KUBECTL is not set; to run the release test point it at a kubectl >= 1.26 binary, e.g. " +
			"(cd test/cluster/components && go build -o /tmp/kubectl k8s.io/kubernetes/cmd/kubectl) && KUBECTL=/tmp/kubectl go test -timeout 60m ./test/release/")
	}
	abs, err := filepath.Abs(kubectl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("KUBECTL=%s: %v", kubectl, err)
	}
	return abs
}

func repoRoot(t *testing.T) string {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".goreleaser.yaml")); err != nil {
		t.Fatalf("%s is not the repository root: %v", root, err)
	}
	return root
}

// tool installs (once; later runs find it in the cache) and returns a pinned tool.
func tool(t *testing.T, root, name string) string {
	t.Helper()
	start := time.Now()
	out, err := exec.CommandContext(t.Context(), filepath.Join(root, "hack", "tools.sh"), name).Output()
	if err != nil {
		var stderr []byte
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			stderr = exit.Stderr
		}
		t.Fatalf("hack/tools.sh %s: %v\n%s", name, err, stderr)
	}
	bin := strings.TrimSpace(string(out))
	t.Logf("%s: %s (%s)", name, bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// release is what one goreleaser snapshot produced.
type release struct {
	Dist      string
	Tag       string // e.g. v0.0.0: archive names and krew's spec.version
	Version   string // e.g. 0.0.1-snapshot+abc1234: what the binary reports, less its "v"
	Commit    string
	Archives  []archive
	Checksums map[string]string // file name -> sha256, from checksums.txt
}

// buildSnapshot runs `goreleaser release --snapshot` on the real config, with
// dist moved out of the repository and, if targets is set, only those targets.
func buildSnapshot(t *testing.T, root, goreleaser, dist, targets string) release {
	t.Helper()
	config := map[string]any{}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(root, ".goreleaser.yaml")), &config); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	config["dist"] = dist
	if targets != "" {
		builds, _ := config["builds"].([]any)
		for _, b := range builds {
			b.(map[string]any)["targets"] = strings.Split(targets, ",")
		}
	}
	b, err := yaml.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	configFile := filepath.Join(filepath.Dir(dist), "goreleaser.yaml")
	writeFile(t, configFile, b)

	// goreleaser reads the commit from git, but gives up on all git state
	// (commit "none") when the repository has no remote, as in a fresh
	// `git init` or a worktree of one. Lend it the project's URL through
	// git's environment config rather than touching the repository.
	var env []string
	if remotes, err := exec.CommandContext(t.Context(), "git", "-C", root, "remote").Output(); err == nil && len(strings.TrimSpace(string(remotes))) == 0 && os.Getenv("GIT_CONFIG_COUNT") == "" {
		env = []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=remote.origin.url", "GIT_CONFIG_VALUE_0=https://github.com/agentkernel/kubectl-agentkernel.git"}
	}
	head, err := exec.CommandContext(t.Context(), "git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("goreleaser needs a git checkout with a commit: git rev-parse HEAD in %s: %v", root, err)
	}

	start := time.Now()
	out, err := run(t, root, env, goreleaser, "release", "--snapshot", "--clean", "--config", configFile)
	if err != nil {
		t.Fatalf("goreleaser release --snapshot: %v\n%s", err, out)
	}
	t.Logf("goreleaser release --snapshot took %s", time.Since(start).Round(time.Second))

	var meta struct {
		Tag     string `json:"tag"`
		Version string `json:"version"`
		Commit  string `json:"commit"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(dist, "metadata.json")), &meta); err != nil {
		t.Fatalf("dist/metadata.json: %v", err)
	}
	var artifacts []struct {
		Name   string `json:"name"`
		Path   string `json:"path"`
		GOOS   string `json:"goos"`
		GOARCH string `json:"goarch"`
		Type   string `json:"type"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(dist, "artifacts.json")), &artifacts); err != nil {
		t.Fatalf("dist/artifacts.json: %v", err)
	}
	if want := strings.TrimSpace(string(head)); meta.Commit != want {
		t.Fatalf("goreleaser built commit %q, but HEAD is %s:\n%s", meta.Commit, want, out)
	}
	rel := release{Dist: dist, Tag: meta.Tag, Version: meta.Version, Commit: meta.Commit, Checksums: map[string]string{}}
	for _, a := range artifacts {
		if a.Type != "Archive" {
			continue
		}
		p := a.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		rel.Archives = append(rel.Archives, archive{Name: a.Name, Path: p, OS: a.GOOS, Arch: a.GOARCH, SHA256: sha256File(t, p)})
	}
	if len(rel.Archives) == 0 {
		t.Fatalf("goreleaser built no archives; artifacts.json:\n%s", readFile(t, filepath.Join(dist, "artifacts.json")))
	}
	for _, line := range strings.Split(strings.TrimSpace(string(readFile(t, filepath.Join(dist, "checksums.txt")))), "\n") {
		if sum, name, ok := strings.Cut(line, "  "); ok {
			rel.Checksums[name] = sum
		}
	}
	return rel
}

func renderTo(t *testing.T, tmpl []byte, tag, file string, uriAndSha func(url string) (string, string, error)) string {
	t.Helper()
	out, err := renderManifest(tmpl, tag, uriAndSha)
	if err != nil {
		t.Fatalf("rendering plugins/krew.yaml: %v", err)
	}
	writeFile(t, file, out)
	return file
}

// run runs a command with extra environment (appended to, so overriding, the
// test's own) and returns its combined output.
func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("$ %s %s (%v)", filepath.Base(name), strings.Join(args, " "), err)
	return string(out), err
}

// stdout is run for output the test parses: stdout alone, with stderr
// (kubectl's completion debug lines, warnings) only in the error.
func stdout(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("$ %s %s (%v)", filepath.Base(name), strings.Join(args, " "), err)
	if err != nil {
		err = fmt.Errorf("%w; stderr:\n%s", err, stderr.String())
	}
	return string(out), err
}

func copyTarGzWithout(t *testing.T, src, dst, drop string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	gzIn, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	gzOut := gzip.NewWriter(out)
	tw := tar.NewWriter(gzOut)
	tr := tar.NewReader(gzIn)
	dropped := false
	for {
		h, err := tr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if h.Name == drop {
			dropped = true
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if !dropped {
		t.Fatalf("%s has no %s to drop", src, drop)
	}
	for _, c := range []io.Closer{tw, gzOut, out} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, file string, b []byte) {
	t.Helper()
	mkdir(t, filepath.Dir(file))
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(dst, readFile(t, src), mode); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string]os.FileMode) []string {
	k := make([]string, 0, len(m))
	for name := range m {
		k = append(k, name)
	}
	slices.Sort(k)
	return k
}
