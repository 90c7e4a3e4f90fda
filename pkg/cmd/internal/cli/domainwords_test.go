package cli

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// domainWordsLeft are the string literals in the domain that still name
// a flag or a command, counted per file: the domain speaks fields, and
// this number only goes down (issue #21). A new flag name or hint in the
// domain fails here; word it as a field.Error and let the edges name it.
var domainWordsLeft = map[string]int{}

// product is the plugin's own name (sandbox.Product), which names no
// command: the one literal the domain may hold that matches.
const product = `"kubectl agentkernel"`

// TestDomainSpeaksFields scans the domain's non-test Go files for string
// literals (not comments) that name a flag ("--x") or a command
// ("kubectl agentkernel").
func TestDomainSpeaksFields(t *testing.T) {
	flagOrHint := regexp.MustCompile(`(^|[\s(,;:"])--[a-z]|kubectl agentkernel`)
	found := map[string]int{}
	for _, dir := range []string{"../../../sandbox", "../../../pool", "../../../transfer", "../../../netaddr", "../../../untrusted", "../../../snapshot"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && flagOrHint.MatchString(lit.Value) && lit.Value != product {
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
			t.Errorf("%s: %d string literals name a flag or a command (at most %d): name the field (field.Error) and let pkg/cmd/internal/cli and pkg/mcp word it", path, n, domainWordsLeft[path])
		}
	}
}

// Every next step and every field the domain's advice names has the
// command line's words, and the CLI says the domain's errors as it did
// when the domain held the hints.
func TestDomainErrorsInFlagWords(t *testing.T) {
	for _, h := range field.Hints {
		if _, ok := fieldHints[h]; !ok {
			t.Errorf("next step %q has no words in fieldHints", h)
		}
	}
	for _, f := range append(sandbox.StartHintFields(), "selector", "secretEnvNames", "ports", "env") {
		if _, ok := fieldFlags[f]; !ok {
			t.Errorf("field %q has no flag in fieldFlags", f)
		}
	}
	secret := sandbox.NewSpec("p", "ns")
	secret.SecretEnvNames = []string{"KEY"}
	_, secretErr := pool.NewPool("p", secret, 1)
	for _, c := range []struct {
		err  error
		want string
	}{
		{&sandbox.NotFoundError{Name: "x", Namespace: "ns"}, `sandbox "x" not found in namespace "ns"; list them with: kubectl agentkernel list -A`},
		{fmt.Errorf("deleting: %w", &sandbox.AlreadyExistsError{Name: "x", Namespace: "ns"}), `deleting: sandbox "x" already exists in namespace "ns"; pick another name, or delete it first: kubectl agentkernel delete x -n ns`},
		{&sandbox.StartError{Name: "x", Namespace: "ns", Reason: "Unschedulable"}, `sandbox "x" in namespace "ns" cannot start: Unschedulable (no node fits; lower --cpu/--memory or fix --node-selector/--runtime-class)`},
		{&pool.PoolNotFoundError{Name: "nope", Namespace: "ns"}, `pool "nope" not found in namespace "ns"; list them with: kubectl agentkernel pool list -A, or make it with: kubectl agentkernel pool create nope --size N`},
		{&pool.PoolExistsError{Name: "taken", Namespace: "ns"}, `pool "taken" already exists in namespace "ns"; resize it with: kubectl agentkernel pool scale taken --size N -n ns, or delete it first: kubectl agentkernel pool delete taken -n ns`},
		{secretErr, `--secret-env belongs to a claim, not to a pool: every warm member would hold the secret; give it when claiming: kubectl agentkernel create NAME --pool p --secret-env KEY`},
		{fmt.Errorf("%w: %w", field.WithStep(errors.New(`deleting the sandbox failed; sandbox "demo" may be left in namespace "ns"`), field.Step{Hint: field.HintRemoveLeft, Name: "demo", Namespace: "ns"}), errors.New("forbidden")),
			`deleting the sandbox failed; sandbox "demo" may be left in namespace "ns" (remove it with: kubectl agentkernel delete demo -n ns): forbidden`},
		{field.Also(errors.New("claim failed"), field.WithStep(errors.New(`refilling pool "warm": boom`), field.Step{Hint: field.HintTopUp, Namespace: "ns"})),
			`claim failed; refilling pool "warm": boom (kubectl agentkernel pool list -n ns tops it up)`},
		{field.Error{Field: "agent", Detail: "pool \"plain\" does not match this claim: `agent`: the pool has none, the claim asks for \"tool\"`step`; leave these out", Step: field.Step{Hint: field.HintPoolForAgent, Value: "tool"}},
			`pool "plain" does not match this claim: --agent: the pool has none, the claim asks for "tool" (a pool for it: kubectl agentkernel pool create NAME --agent tool --size N); leave these out`},
	} {
		// Worded twice (a command wraps its RunE, and so does the root) it
		// reads the same.
		if got := FlagWordsError(FlagWordsError(c.err)).Error(); got != c.want {
			t.Errorf("in flag words:\n got %s\nwant %s", got, c.want)
		}
	}
}

// Explain adds its own advice to a refused request without losing the
// next step the domain put on the error: the CLI still names the command.
func TestExplainKeepsTheDomainsStep(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "agentkernel-demo", errors.New("no"))
	left := fmt.Errorf("%w: %w", field.WithStep(errors.New(`deleting the sandbox failed; sandbox "demo" may be left in namespace "ns"`),
		field.Step{Hint: field.HintRemoveLeft, Name: "demo", Namespace: "ns"}), forbidden)
	got := FlagWordsError((&Clients{}).Explain(left, "ns")).Error()
	for _, want := range []string{"(remove it with: kubectl agentkernel delete demo -n ns)", "ask a cluster admin for access"} {
		if !strings.Contains(got, want) {
			t.Errorf("explained: %s\nwant it to say %q", got, want)
		}
	}
	if !apierrors.IsForbidden((&Clients{}).Explain(left, "ns")) {
		t.Error("the explained error no longer unwraps to the API server's Forbidden")
	}
}
