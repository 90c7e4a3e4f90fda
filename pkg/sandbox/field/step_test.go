package field

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"
)

// Every Hint the package declares is in Hints, which the edges' tests
// check their tables against: a new next step cannot go unworded.
func TestHintsListsEveryHint(t *testing.T) {
	for _, file := range []string{"field.go", "step.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if v, ok := n.(*ast.ValueSpec); ok {
				if id, ok := v.Type.(*ast.Ident); ok && id.Name == "Hint" {
					for i, name := range v.Names {
						lit := v.Values[i].(*ast.BasicLit).Value
						if !slices.Contains(Hints, Hint(lit[1:len(lit)-1])) {
							t.Errorf("%s is not in Hints", name.Name)
						}
					}
				}
			}
			return true
		})
	}
}

// Say words the fields and next steps of every error in the chain, the
// outer before the inner, a step where its Detail says `step`, and keeps
// the rest word for word.
func TestSay(t *testing.T) {
	name := func(f string) string { return "--" + f }
	step := func(s Step) string { return fmt.Sprintf(" [%s %s]", s.Hint, s.Name) }
	inner := Invalid("cpu", "`cpu` is too much")
	err := fmt.Errorf("creating: %w", WithStep(fmt.Errorf("it failed: %w", inner), Step{Hint: HintListSandboxes, Name: "x"}))
	if got, want := Say(err, name, step), "creating: it failed: --cpu is too much [listSandboxes x]"; got != want {
		t.Errorf("Say = %q, want %q", got, want)
	}
	mid := Error{Field: "agent", Detail: "`agent` differs`step`; rest", Step: Step{Hint: HintPoolForAgent, Name: "a"}}
	if got, want := Say(mid, name, step), "--agent differs [poolForAgent a]; rest"; got != want {
		t.Errorf("Say = %q, want %q", got, want)
	}
	if got, want := mid.Error(), "agent differs; rest"; got != want {
		t.Errorf("Error = %q, want %q", got, want)
	}
	also := Also(errors.New("first"), WithStep(errors.New("second"), Step{Hint: HintTopUp}))
	if got, want := Say(also, name, step), "first; second [topUp ]"; got != want || errors.Unwrap(also).Error() != "first" {
		t.Errorf("Say = %q, want %q (unwrapping to the first alone)", got, want)
	}
}
