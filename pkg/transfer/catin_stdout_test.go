package transfer

import (
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// Copying a file into a sandbox without tar holds the exec's stdout until
// the file has come whole (containerd#13934 cuts stdin once stdout ends).
func TestCatInKeepsStdoutWhileCopying(t *testing.T) {
	dir := t.TempDir()
	testexec.StdoutOutlivesStdin(t, []string{"sh", "-c", catInScript, "sh", dir, "f", "into", dir}, []byte("x"))
}
