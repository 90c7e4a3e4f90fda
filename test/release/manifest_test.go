package release

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"
)

// archive is one archive goreleaser built, as its artifacts.json lists it.
type archive struct {
	Name   string // file name, e.g. kubectl-agentkernel_v0.1.0_linux_amd64.tar.gz
	Path   string
	OS     string
	Arch   string
	SHA256 string
}

// manifest is the part of krew's Plugin (index.krew.googlecontainertools.github.com/v1alpha2)
// the checks below read. krew itself validates the whole thing.
type manifest struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version   string     `json:"version"`
		Platforms []platform `json:"platforms"`
	} `json:"spec"`
}

type platform struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	URI    string `json:"uri"`
	SHA256 string `json:"sha256"`
	Bin    string `json:"bin"`
	Files  []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"files"`
}

// placeholderSHA256 stands in for archives not built in this run. It has
// letters in it: 64 digits would read as a YAML number, not a string.
var placeholderSHA256 = strings.Repeat("deadbeef", 8)

var versionInTag = regexp.MustCompile(`\d+(\.\d+)+`)

// renderManifest renders a krew-release-bot template the way the bot does:
// a Go text/template over {TagName}, whose addURIAndSha "URL-TEMPLATE" TAG
// renders the URL (with .TagName and .Version) and writes "uri: URL" and,
// four spaces in, "sha256: SUM". uriAndSha picks the uri and sum for a URL;
// the real one looks the archive up in goreleaser's output.
func renderManifest(tmpl []byte, tag string, uriAndSha func(url string) (uri, sum string, err error)) ([]byte, error) {
	version := versionInTag.FindString(tag)
	if version == "" {
		version = tag
	}
	funcs := template.FuncMap{
		"addURIAndSha": func(urlTemplate, tag string) (string, error) {
			t, err := template.New("url").Parse(urlTemplate)
			if err != nil {
				return "", err
			}
			var url strings.Builder
			if err := t.Execute(&url, struct{ TagName, Version string }{tag, version}); err != nil {
				return "", err
			}
			uri, sum, err := uriAndSha(url.String())
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("uri: %s\n    sha256: %s", uri, sum), nil
		},
		"indent": func(spaces int, v string) string {
			v = strings.ReplaceAll(v, "    sha256:", "sha256:")
			pad := strings.Repeat(" ", spaces)
			return strings.TrimSpace(pad + strings.ReplaceAll(v, "\n", "\n"+pad))
		},
	}
	t, err := template.New("krew.yaml").Funcs(funcs).Option("missingkey=error").Parse(string(tmpl))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := t.Execute(&out, struct{ TagName string }{tag}); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func parseManifest(b []byte) (manifest, error) {
	var m manifest
	err := yaml.Unmarshal(b, &m)
	return m, err
}

// checkArchivesMatchPlatforms reports every way the manifest and the archives
// disagree: an archive with no platform, a platform with no archive, two
// platforms for one archive, a selector for another OS or arch than the
// archive holds, or a bin that is not the plugin binary for that OS.
func checkArchivesMatchPlatforms(archives []archive, m manifest) []string {
	var problems []string
	byName := map[string]archive{}
	for _, a := range archives {
		byName[a.Name] = a
	}
	claimed := map[string]int{}
	for i, p := range m.Spec.Platforms {
		name := path.Base(p.URI)
		a, ok := byName[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("spec.platforms[%d] downloads %s, which goreleaser does not build", i, name))
			continue
		}
		claimed[name]++
		if os, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]; os != a.OS || arch != a.Arch {
			problems = append(problems, fmt.Sprintf("spec.platforms[%d] selects os=%s arch=%s but downloads %s, built for %s/%s", i, os, arch, name, a.OS, a.Arch))
		}
		if want := binaryName(a.OS); p.Bin != want {
			problems = append(problems, fmt.Sprintf("spec.platforms[%d] (%s/%s) has bin %q, want %q", i, a.OS, a.Arch, p.Bin, want))
		}
	}
	for _, a := range archives {
		switch n := claimed[a.Name]; {
		case n == 0:
			problems = append(problems, fmt.Sprintf("goreleaser builds %s (%s/%s) but plugins/krew.yaml has no platform for it", a.Name, a.OS, a.Arch))
		case n > 1:
			problems = append(problems, fmt.Sprintf("%d platforms in plugins/krew.yaml download %s", n, a.Name))
		}
	}
	return problems
}

func binaryName(goos string) string {
	if goos == "windows" {
		return "kubectl-agentkernel.exe"
	}
	return "kubectl-agentkernel"
}

// archiveEntries lists the regular files in a .tar.gz or .zip with their modes.
func archiveEntries(file string) (map[string]os.FileMode, error) {
	entries := map[string]os.FileMode{}
	if strings.HasSuffix(file, ".zip") {
		r, err := zip.OpenReader(file)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		for _, f := range r.File {
			if f.Mode().IsRegular() {
				entries[f.Name] = f.Mode()
			}
		}
		return entries, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			entries[h.Name] = h.FileInfo().Mode()
		}
	}
}

func sha256File(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func names(archives []archive) string {
	var n []string
	for _, a := range archives {
		n = append(n, a.Name)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// The template and the archives are kept in step only by these checks, so
// they must catch drift in either direction.
func TestCheckArchivesMatchPlatformsFindsDrift(t *testing.T) {
	tmpl, err := os.ReadFile("../../plugins/krew.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const tag = "v1.2.3"
	var all []archive
	for _, goos := range []string{"linux", "darwin", "windows"} {
		for _, arch := range []string{"amd64", "arm64"} {
			ext := ".tar.gz"
			if goos == "windows" {
				ext = ".zip"
			}
			all = append(all, archive{Name: "kubectl-agentkernel_" + tag + "_" + goos + "_" + arch + ext, OS: goos, Arch: arch})
		}
	}
	render := func(t *testing.T, edit func(string) string) manifest {
		t.Helper()
		out, err := renderManifest([]byte(edit(string(tmpl))), tag, func(url string) (string, string, error) {
			return url, placeholderSHA256, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseManifest(out)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	same := func(s string) string { return s }

	tests := []struct {
		name     string
		archives []archive
		edit     func(string) string
		want     []string
	}{
		{"template and matrix agree", all, same, nil},
		{"goreleaser builds one more archive", append(all[:len(all):len(all)], archive{Name: "kubectl-agentkernel_v1.2.3_linux_riscv64.tar.gz", OS: "linux", Arch: "riscv64"}), same,
			[]string{"goreleaser builds kubectl-agentkernel_v1.2.3_linux_riscv64.tar.gz (linux/riscv64) but plugins/krew.yaml has no platform for it"}},
		{"goreleaser stops building one", all[1:], same,
			[]string{"spec.platforms[0] downloads kubectl-agentkernel_v1.2.3_linux_amd64.tar.gz, which goreleaser does not build"}},
		{"archive renamed in goreleaser only", all, func(s string) string { return strings.ReplaceAll(s, "_darwin_arm64.tar.gz", "_darwin_arm64.zip") },
			[]string{
				"spec.platforms[3] downloads kubectl-agentkernel_v1.2.3_darwin_arm64.zip, which goreleaser does not build",
				"goreleaser builds kubectl-agentkernel_v1.2.3_darwin_arm64.tar.gz (darwin/arm64) but plugins/krew.yaml has no platform for it",
			}},
		{"selector for the wrong arch", all, func(s string) string {
			return strings.Replace(s, "os: linux\n        arch: arm64", "os: linux\n        arch: amd64", 1)
		}, []string{"spec.platforms[1] selects os=linux arch=amd64 but downloads kubectl-agentkernel_v1.2.3_linux_arm64.tar.gz, built for linux/arm64"}},
		{"windows bin without .exe", all, func(s string) string {
			return strings.Replace(s, "bin: kubectl-agentkernel.exe", "bin: kubectl-agentkernel", 1)
		}, []string{`spec.platforms[4] (windows/amd64) has bin "kubectl-agentkernel", want "kubectl-agentkernel.exe"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkArchivesMatchPlatforms(tt.archives, render(t, tt.edit))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRenderManifestLikeKrewReleaseBot(t *testing.T) {
	tmpl := `version: {{ .TagName }}
platforms:
- selector: {}
  {{ addURIAndSha "https://example.test/{{ .TagName }}/x_{{ .Version }}.tar.gz" .TagName | indent 2 }}
  bin: x
`
	got, err := renderManifest([]byte(tmpl), "v1.2.3", func(url string) (string, string, error) {
		return url, "abc", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `version: v1.2.3
platforms:
- selector: {}
  uri: https://example.test/v1.2.3/x_1.2.3.tar.gz
  sha256: abc
  bin: x
`
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
