package sandbox

import (
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// hostRunner is the host runner shared by the shell and copy tests.
type hostRunner = testexec.HostRunner

// fileRunners: testexec.FileRunners.
func fileRunners(t *testing.T) map[string]*hostRunner { return testexec.FileRunners(t) }
