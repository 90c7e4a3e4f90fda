//go:build unix

package mcp

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A FIFO under --root is never opened in a way that waits for a writer: a
// copy that met one (or one swapped in for a file while the copy walked)
// would otherwise hang for ever. At the top it is refused, inside a tree
// skipped with a warning.
func TestCopyInNeverWaitsOnAFIFO(t *testing.T) {
	root, box := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tree", "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"pipe", "tree/pipe"} {
		if err := syscall.Mkfifo(filepath.Join(root, p), 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	f := start(t, fakeCluster(), &hostExecutor{}, func(o *Options) { o.Root = root })
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "fifo"})
	f.fails(toolCopyIn, map[string]any{"sandbox": "fifo", "local_path": "pipe", "sandbox_path": box + "/"}, "not a regular file or directory")
	out := ok[CopyOutput](f, toolCopyIn, map[string]any{"sandbox": "fifo", "local_path": "tree", "sandbox_path": box + "/"})
	if !strings.Contains(strings.Join(out.Warnings, "\n"), "tree/pipe") {
		t.Errorf("no warning about the FIFO: %+v", out)
	}
	if b, err := os.ReadFile(filepath.Join(box, "tree", "a.txt")); err != nil || string(b) != "a\n" {
		t.Errorf("tree/a.txt in the sandbox: %q, %v", b, err)
	}
}
