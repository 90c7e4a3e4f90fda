package arrows

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestArrows checks the whole module's imports — every package with the
// packages its tests import — against Rules.
func TestArrows(t *testing.T) {
	pkgs := modulePackages(t)
	violations, idle := Check(Rules, pkgs)
	for _, v := range violations {
		t.Error(v)
	}
	for _, r := range idle {
		t.Errorf("the rule %q matches no package: the layout moved; update internal/arrows/rules.go and CONTRIBUTING.md", r.From)
	}
}

// modulePackages lists this module's packages with their dependencies,
// test dependencies included: `go list -test -deps` gives each package's
// test variant ("p [p.test]") its own dependency list.
func modulePackages(t *testing.T) []Package {
	t.Helper()
	cmd := exec.Command("go", "list", "-test", "-json=ImportPath,Deps,ForTest", Module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []Package
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	for dec.More() {
		var p struct {
			ImportPath, ForTest string
			Deps                []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		path, variant, _ := strings.Cut(p.ImportPath, " ") // "p [p.test]" is p's test variant
		if strings.HasSuffix(path, ".test") {
			continue // the generated test main imports testing's plumbing only
		}
		deps := make([]string, 0, len(p.Deps))
		for _, d := range p.Deps {
			d, _, _ = strings.Cut(d, " ")
			deps = append(deps, d)
		}
		pkgs = append(pkgs, Package{ImportPath: path, Deps: deps, Test: variant != "" || strings.HasSuffix(path, "_test")})
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages of %s: not this module?", len(pkgs), Module)
	}
	return pkgs
}

// TestCheckFindsViolations proves Check can fail: arrows broken on purpose,
// directly and through another package, and an idle rule.
func TestCheckFindsViolations(t *testing.T) {
	m := func(p string) string { return Module + "/" + p }
	pkgs := []Package{
		{ImportPath: m("pkg/sandbox"), Deps: []string{m("pkg/sandbox/fence"), m("pkg/pool"), "github.com/spf13/cobra"}},
		{ImportPath: m("pkg/sandbox/fence"), Deps: []string{m("pkg/netaddr")}},
		{ImportPath: m("pkg/netaddr"), Deps: []string{"net/netip", m("pkg/untrusted")}},
		{ImportPath: m("pkg/cmd"), Deps: []string{m("pkg/sandbox"), "github.com/spf13/cobra"}},
		{ImportPath: m("bench"), Deps: []string{m("pkg/cmd/pool")}},
		{ImportPath: m("cmd/kubectl-agentkernel"), Deps: []string{m("internal/fakecluster")}},
		{ImportPath: m("pkg/pool"), Deps: []string{m("internal/fakecluster")}, Test: true},
	}
	got, idle := Check(Rules, pkgs)
	var lines []string
	for _, v := range got {
		lines = append(lines, short(v.From)+" -> "+short(v.To))
	}
	want := []string{
		"bench -> pkg/cmd/pool",
		"cmd/kubectl-agentkernel -> internal/fakecluster",
		"pkg/netaddr -> pkg/untrusted",
		"pkg/sandbox -> pkg/pool",
		"pkg/sandbox -> github.com/spf13/cobra",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if len(idle) == 0 {
		t.Error("rules about packages absent from the graph (mcp, transfer…) were not reported idle")
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		want          bool
	}{
		{"pkg/sandbox/...", Module + "/pkg/sandbox", true},
		{"pkg/sandbox/...", Module + "/pkg/sandbox/fence", true},
		{"pkg/sandbox/...", Module + "/pkg/sandboxes", false},
		{"pkg/sandbox", Module + "/pkg/sandbox/fence", false},
		{"pkg/egress", Module + "/pkg/egress/hosts", false},
		{"...", Module + "/pkg/x", true},
		{"...", "github.com/other/x", false},
		{"github.com/spf13/cobra/...", "github.com/spf13/cobra", true},
		{"k8s.io/cli-runtime/...", "k8s.io/cli-runtime/pkg/printers", true},
		{"k8s.io/cli-runtime/...", "k8s.io/client-go/rest", false},
	} {
		if got := match(c.pattern, c.path); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}
