package sandbox

import (
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// hostRunner is the host runner shared by the shell and copy tests.
type hostRunner = testexec.HostRunner

func toolDir(t *testing.T, without ...string) string { return testexec.ToolDir(t, without...) }

// fileRunners: testexec.FileRunners.
func fileRunners(t *testing.T) map[string]*hostRunner { return testexec.FileRunners(t) }
