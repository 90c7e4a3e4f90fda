package mcp

import (
	"fmt"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// Every field a claim can name has an argument, or says plainly that no
// argument sets it; a domain error reads in the tool's argument names.
func TestFieldArgs(t *testing.T) {
	for _, f := range append(append([]string(nil), pool.ClaimFields...), pool.PerClaimFields...) {
		if _, ok := fieldArgs[f]; !ok {
			t.Errorf("field %q is neither an argument nor marked notSettable in fieldArgs", f)
		}
	}
	err := fmt.Errorf("copy: %w", field.Invalid("ephemeralStorage", "`ephemeralStorage` must be greater than zero"))
	if got, want := inArgWords(err).Error(), "copy: ephemeral_storage must be greater than zero"; got != want {
		t.Errorf("inArgWords = %q, want %q", got, want)
	}
}
