package envd

import (
	"path/filepath"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// An upload of unknown size holds the exec's stdout until its body ends:
// a real node's containerd cut an upload at 192 KiB when the script handed
// its stdin to `exec cat`.
func TestUploadKeepsStdoutWhileCopying(t *testing.T) {
	dir := t.TempDir()
	testexec.StdoutOutlivesStdin(t, []string{"sh", "-c", uploadScript, "sh", filepath.Join(dir, "f"), filepath.Join(dir, ".t"), "0", "write"}, []byte("x"))
}
