package transfer

import (
	"archive/tar"
	"context"
	"os"
	"strings"
	"testing"
)

// writeFileAt takes one name in its directory, never a path: the extractor
// hands it nothing else, and it refuses rather than resolve one.
func TestWriteFileAtTakesOneName(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	x, root := extractorIn(t, dir)
	for _, name := range []string{"", ".", "..", "sub/f", "/f"} {
		err := x.writeFileAt(root, name, &tar.Header{Typeflag: tar.TypeReg, Mode: 0o644}, strings.NewReader(""))
		if err == nil || !strings.Contains(err.Error(), "not a single name") {
			t.Errorf("writeFileAt(%q): err = %v, want not a single name", name, err)
		}
	}
	if _, err := os.Stat(dir + "/sub/f"); err == nil {
		t.Error("sub/f was made")
	}
}

// A directory the user may not write into is the kernel's error, with the
// name it was about.
func TestWriteFileAtReportsTheOpen(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into any directory")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Chmod(dir, 0o755) }()
	x, root := extractorIn(t, dir)
	err := x.writeFileAt(root, "f", &tar.Header{Typeflag: tar.TypeReg, Mode: 0o644}, strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "open f") || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("err = %v, want open f: permission denied", err)
	}
}

// extractorIn is an extractor writing into dir through an os.Root, both
// closed at the end of the test.
func extractorIn(t *testing.T, dir string) (*extractor, *os.Root) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	x := &extractor{ctx: context.Background(), copyBuf: make([]byte, 64)}
	t.Cleanup(func() {
		if x.fdDir != nil {
			x.fdDir.Close()
		}
		root.Close()
	})
	return x, root
}
