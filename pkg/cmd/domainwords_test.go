package cmd

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// domainWordsLeft are the string literals in the domain that still name
// a flag or a command, counted per file: the domain speaks fields, and
// this number only goes down (issue #21). A new flag name or hint in the
// domain fails here; word it as a field.Error and let the edges name it.
var domainWordsLeft = map[string]int{
	"../sandbox/claimstate.go": 1,
	"../sandbox/create.go":     2,
	"../sandbox/delete.go":     1,
	"../sandbox/errors.go":     7,
	"../sandbox/exec.go":       2,
	"../sandbox/parse.go":      2,
	"../sandbox/identity.go":   1,
	"../sandbox/wait.go":       1,
	"../sandbox/pid1.go":       1, // the idle message a sandbox writes to its termination log
	"../pool/claim.go":         6,
	"../pool/errors.go":        3,
	"../pool/pool.go":          5,
}

// TestDomainSpeaksFields scans the domain's non-test Go files for string
// literals (not comments) that name a flag ("--x") or a command
// ("kubectl agentkernel").
func TestDomainSpeaksFields(t *testing.T) {
	flagOrHint := regexp.MustCompile(`(^|[\s(,;:"])--[a-z]|kubectl agentkernel`)
	found := map[string]int{}
	for _, dir := range []string{"../sandbox", "../pool", "../transfer", "../netaddr", "../untrusted"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && flagOrHint.MatchString(lit.Value) {
					found[filepath.ToSlash(path)]++
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for path, most := range domainWordsLeft {
		if found[path] < most {
			t.Errorf("%s: %d string literals name a flag or a command, fewer than %d: lower domainWordsLeft", path, found[path], most)
		}
	}
	for path, n := range found {
		if n > domainWordsLeft[path] {
			t.Errorf("%s: %d string literals name a flag or a command (at most %d): name the field (field.Error) and let pkg/cmd and pkg/mcp word it", path, n, domainWordsLeft[path])
		}
	}
}
