package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// Every field a claim can name has a flag, and the flags word a domain
// error as the command line said it before the domain spoke fields.
func TestFieldFlags(t *testing.T) {
	for _, f := range append(append([]string(nil), pool.ClaimFields...), pool.PerClaimFields...) {
		if _, ok := fieldFlags[f]; !ok {
			t.Errorf("field %q has no flag in fieldFlags", f)
		}
	}
	err := fmt.Errorf("making it: %w", field.Invalid("allowEgress", "`allowEgress` needs `network` egress"))
	if got, want := inFlagWords(err), "making it: --allow-egress needs --network egress"; got != want {
		t.Errorf("inFlagWords = %q, want %q", got, want)
	}
	worded := FlagWordsError(err)
	var fe field.Error
	if !errors.As(worded, &fe) || !strings.Contains(worded.Error(), "--allow-egress") {
		t.Errorf("flagWordsError = %v: lost the field error or the flag", worded)
	}
}
