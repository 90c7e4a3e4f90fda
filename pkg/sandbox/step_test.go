package sandbox

import (
	"errors"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// stepOf is the next step err names for the edges to word (pkg/cmd and
// pkg/mcp test their words), or none.
func stepOf(err error) field.Step {
	var s field.Stepper
	if errors.As(err, &s) {
		return s.NextStep()
	}
	return field.Step{}
}
