package mcp

import (
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// Every next step and every field the domain's advice names has this
// server's words, and an agent reads its tools and arguments, never a
// command line.
func TestStepWords(t *testing.T) {
	for _, h := range field.Hints {
		if _, ok := stepWords[h]; !ok {
			t.Errorf("next step %q has no words in stepWords", h)
		}
	}
	for _, f := range append(sandbox.StartHintFields(), "selector", "secretEnvNames", "ports", "env") {
		if _, ok := fieldArgs[f]; !ok {
			t.Errorf("field %q is neither an argument nor marked notSettable in fieldArgs", f)
		}
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{&sandbox.NotFoundError{Name: "x", Namespace: "ns"}, `sandbox "x" not found in namespace "ns"; list them with the list_sandboxes tool`},
		{&sandbox.AlreadyExistsError{Name: "x", Namespace: "ns"}, `sandbox "x" already exists in namespace "ns"; pick another name, or delete it first with the delete_sandbox tool`},
		{&sandbox.StartError{Name: "x", Namespace: "ns", Reason: "InvalidImageName"}, `sandbox "x" in namespace "ns" cannot start: InvalidImageName (fix the image reference)`},
		{&pool.PoolNotFoundError{Name: "nope", Namespace: "ns"}, `pool "nope" not found in namespace "ns"; ask the server's user which pools there are, or create_sandbox without pool`},
	} {
		if got := inArgWords(inArgWords(c.err)).Error(); got != c.want {
			t.Errorf("in argument words:\n got %s\nwant %s", got, c.want)
		}
	}
}
