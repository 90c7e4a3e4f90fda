// Package arrows holds the import rules of this module — which package may
// never import which — and checks them against `go list`. The rules are the
// layout drawn in CONTRIBUTING.md: the domain (sandboxes, the fence, pools,
// copying, the address table) speaks fields and knows nothing of commands,
// the MCP server or the tools around it; arrows point down.
package arrows

import (
	"fmt"
	"sort"
	"strings"
)

// Module is this module's import path.
const Module = "github.com/agentkernel/kubectl-agentkernel"

// Rule forbids packages matching From to depend, directly or through other
// packages, on any package matching Never. Patterns are import paths
// relative to Module ("pkg/sandbox"), or a whole tree ("pkg/sandbox/..."),
// or an outside path ("github.com/spf13/cobra/...").
type Rule struct {
	From  []string
	Never []string
	// ProductOnly rules hold for packages as built, not for their tests,
	// which may import what the product must not (the fake cluster).
	ProductOnly bool
	Why         string
}

// Rules are the arrows this module keeps.
var Rules = []Rule{
	{
		From: domain,
		Never: []string{
			"pkg/cmd/...", "pkg/mcp/...", "pkg/doctor/...", "pkg/agents/...", "pkg/rbac/...",
			"pkg/egress", "pkg/version", "cmd/...",
			"github.com/spf13/cobra/...", "github.com/spf13/pflag/...", "k8s.io/cli-runtime/...",
			"github.com/modelcontextprotocol/...",
		},
		Why: "the domain speaks fields, not flags or tools: the CLI, the MCP server and doctor own their words; the version is passed in",
	},
	{
		From:  []string{"pkg/sandbox/..."},
		Never: []string{"pkg/pool/...", "pkg/transfer/...", "pkg/snapshot/...", "github.com/kubernetes-csi/..."},
		Why:   "pools are built on sandboxes, copying works through any exec, and snapshots on workspaces, never the other way round",
	},
	{
		From:  []string{"pkg/procs/..."},
		Never: []string{"pkg/e2b/...", "pkg/pool/...", "pkg/transfer/...", "pkg/snapshot/..."},
		Why:   "a sandbox's processes are built on the sandbox's exec alone: envd and the MCP tools serve them, never the other way round",
	},
	{
		From:  []string{"pkg/sandbox/..."},
		Never: []string{"pkg/procs/..."},
		Why:   "processes are built on sandboxes, never the other way round",
	},
	{
		From:  []string{"pkg/sandbox/fence/..."},
		Never: []string{"pkg/sandbox"},
		Why:   "the fence is a part the sandbox is made with: it renders from its own inputs",
	},
	{
		From:  []string{"pkg/netaddr/...", "pkg/untrusted/..."},
		Never: []string{"..."},
		Why:   "the address table and the sanitiser are leaves: they import nothing of ours",
	},
	{
		From:  []string{"pkg/...", "cmd/..."},
		Never: []string{"test/...", "bench/...", "internal/arrows/..."},
		Why:   "the product never depends on its tests or benchmarks",
	},
	{
		From:        []string{"..."},
		Never:       []string{"internal/fakecluster/...", "internal/testexec/...", "pkg/cmd/internal/clitest/..."},
		ProductOnly: true,
		Why:         "the fake cluster, the host runner and the commands' test factory are for tests only: the product talks to a real API server and a real sandbox",
	},
	{
		From:  []string{"pkg/mcp/...", "pkg/e2b/...", "pkg/doctor/...", "pkg/egress/...", "pkg/agents/...", "pkg/rbac/..."},
		Never: []string{"pkg/cmd/...", "cmd/...", "github.com/spf13/cobra/...", "k8s.io/cli-runtime/..."},
		Why:   "only the command line speaks flags: these packages serve other front ends too",
	},
	{
		From:  []string{"pkg/cmd/internal/cli/..."},
		Never: []string{"pkg/cmd", "pkg/cmd/pool/...", "pkg/cmd/egress/..."},
		Why:   "the commands' shared plumbing sits below every command: the top-level commands and the families import it, never the other way round",
	},
	{
		From:  []string{"pkg/cmd/pool/...", "pkg/cmd/egress/..."},
		Never: []string{"pkg/cmd"},
		Why:   "a command family is a room of its own: pkg/cmd's root adds it; what it shares with other commands is in pkg/cmd/internal/cli",
	},
	{
		From:  []string{"pkg/cmd/pool/..."},
		Never: []string{"pkg/cmd/egress/..."},
		Why:   "one command family never reaches into another: what both need is in pkg/cmd/internal/cli",
	},
	{
		From:  []string{"pkg/cmd/egress/..."},
		Never: []string{"pkg/cmd/pool/..."},
		Why:   "one command family never reaches into another: what both need is in pkg/cmd/internal/cli",
	},
	{
		From:  []string{"bench/..."},
		Never: []string{"pkg/cmd/..."},
		Why:   "the benchmark drives the built binary, as a user does",
	},
}

// domain are the packages of the domain.
var domain = []string{"pkg/sandbox/...", "pkg/pool/...", "pkg/transfer/...", "pkg/netaddr/...", "pkg/untrusted/...", "pkg/egress/hosts/...", "pkg/snapshot/...", "pkg/procs/..."}

// Package is what Check needs of one package: its path and every package
// it depends on, directly or not.
type Package struct {
	ImportPath string
	Deps       []string
	Test       bool // the package's test variant: it and its tests
}

// Violation is one forbidden arrow.
type Violation struct {
	From, To string
	Rule     *Rule
}

func (v Violation) String() string {
	return fmt.Sprintf("%s imports %s (directly or through others): %s", short(v.From), short(v.To), v.Rule.Why)
}

// Check returns every forbidden arrow among pkgs, sorted, and the rules
// whose From matches no package at all (a rule about a package that moved
// would otherwise pass for ever).
func Check(rules []Rule, pkgs []Package) (violations []Violation, idle []*Rule) {
	seen := map[[2]string]bool{} // a package and its test variant report an arrow once
	for i := range rules {
		r := &rules[i]
		matched := false
		for _, p := range pkgs {
			if !matchAny(r.From, p.ImportPath) || (r.ProductOnly && p.Test) {
				continue
			}
			matched = true
			for _, d := range p.Deps {
				key := [2]string{p.ImportPath, d}
				if d != p.ImportPath && !seen[key] && matchAny(r.Never, d) {
					seen[key] = true
					violations = append(violations, Violation{From: p.ImportPath, To: d, Rule: r})
				}
			}
		}
		if !matched {
			idle = append(idle, r)
		}
	}
	sort.Slice(violations, func(i, j int) bool {
		if violations[i].From != violations[j].From {
			return violations[i].From < violations[j].From
		}
		return violations[i].To < violations[j].To
	})
	return violations, idle
}

func matchAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if match(p, path) {
			return true
		}
	}
	return false
}

// match reports whether path matches pattern, as `go list` patterns do for
// "/..." (the tree, its root included).
func match(pattern, path string) bool {
	if pattern == "..." {
		return path == Module || strings.HasPrefix(path, Module+"/")
	}
	if !strings.Contains(strings.SplitN(pattern, "/", 2)[0], ".") {
		pattern = Module + "/" + pattern
	}
	if tree, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == tree || strings.HasPrefix(path, tree+"/")
	}
	return path == pattern
}

func short(path string) string {
	if s, ok := strings.CutPrefix(path, Module+"/"); ok {
		return s
	}
	return path
}
