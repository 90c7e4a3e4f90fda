package transfer

import (
	"archive/tar"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzNames and fuzzTargets are the words the decoder below builds names
// and link targets from: few enough that entries collide, links meet each
// other, and chains form.
var (
	fuzzNames   = []string{"a", "b", "x", "q"}
	fuzzTargets = []string{"a", "b", "x", "q", ".", "..", "", "secret"}
)

// fuzzReader turns fuzz bytes into small choices; past the end it answers 0.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) next(n int) int {
	if len(r.b) == 0 {
		return 0
	}
	v := int(r.b[0]) % n
	r.b = r.b[1:]
	return v
}

func (r *fuzzReader) path(words []string, maxDepth int) string {
	parts := make([]string, 1+r.next(maxDepth))
	for i := range parts {
		parts[i] = words[r.next(len(words))]
	}
	return strings.Join(parts, "/")
}

// FuzzCopyOutSuccessiveCopies decodes a destination the user already had
// (directories, files and links of any kind, escaping ones included) and
// up to four copies into it (each into the tree or a directory of it).
// After every copy, every symlink the copies made is followed on disk, the
// way the kernel would, chains included (through the user's links too),
// and must end inside the tree; and nothing outside the destination may
// change. The user's own links are theirs: they are not checked.
func FuzzCopyOutSuccessiveCopies(f *testing.F) {
	// l -> x/x/../../secret, then x -> . (the composition of the issue).
	f.Add([]byte{0, 2, 1, 2, 0, 2, 2, 2, 3, 7, 1, 2, 2, 0, 2, 4})
	f.Add([]byte{1, 2, 3, 1, 1, 5, 5, 2, 2, 1, 2, 0, 1, 3, 2, 2, 0, 0, 0, 3, 3})
	f.Add([]byte("hard links and symlinks"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{data}
		base := t.TempDir()
		if err := os.Mkdir(filepath.Join(base, "secret"), 0o755); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(base, "dest")
		tree := filepath.Join(dest, "out")
		if err := os.MkdirAll(tree, 0o755); err != nil {
			t.Fatal(err)
		}
		// The user's own entries.
		users := map[string]string{} // link path -> target
		for range r.next(4) {
			p := filepath.Join(tree, r.path(fuzzNames, 2))
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			switch r.next(3) {
			case 0:
				_ = os.Mkdir(p, 0o755)
			case 1:
				_ = os.WriteFile(p, []byte("mine"), 0o644)
			default:
				target := r.path(fuzzTargets, 3)
				if r.next(4) == 0 {
					target = "/" + target
				}
				if os.Symlink(target, p) == nil {
					users[p] = target
				}
			}
		}
		for range 1 + r.next(4) {
			remote, local, top := "/workspace/out", dest, "./out"
			if r.next(3) == 0 { // into a directory of the tree
				remote, local, top = "/workspace/a", tree, "./a"
			}
			entries := []entry{{name: top + "/", typ: tar.TypeDir}}
			for range r.next(8) {
				name := top + "/" + r.path(fuzzNames, 3)
				switch r.next(4) {
				case 0:
					entries = append(entries, entry{name: name + "/", typ: tar.TypeDir})
				case 1:
					entries = append(entries, entry{name: name, typ: tar.TypeReg, body: "s"})
				case 2:
					entries = append(entries, entry{name: name, link: r.path(fuzzTargets, 4), typ: tar.TypeSymlink})
				default:
					entries = append(entries, entry{name: name, link: top + "/" + r.path(fuzzNames, 3), typ: tar.TypeLink})
				}
			}
			if r.next(4) == 0 { // a stream that fails half-way
				entries = append(entries, entry{name: "/etc/evil", typ: tar.TypeReg, body: "x"})
			}
			_ = CopyFromSandbox(context.Background(), &tarRunner{makeTar(t, entries)}, remote, local, Limits{MaxFiles: 100}, io.Discard)
			assertSandboxLinksInside(t, tree, users)
		}
		if entries, _ := os.ReadDir(filepath.Join(base, "secret")); len(entries) != 0 {
			t.Fatalf("wrote into the directory next to the destination: %v", entries)
		}
		if entries, _ := os.ReadDir(base); len(entries) != 2 {
			t.Fatalf("wrote next to the destination: %v", entries)
		}
	})
}

// assertSandboxLinksInside follows every symlink under tree but the user's
// own (unchanged) ones with followOnDisk, which shares no code with the
// extractor, and fails for any that ends outside tree.
func assertSandboxLinksInside(t *testing.T, tree string, users map[string]string) {
	t.Helper()
	root, err := filepath.EvalSymlinks(tree)
	if err != nil {
		t.Fatal(err)
	}
	_ = filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, _ := os.Readlink(p)
		if mine, ok := users[p]; ok && mine == target {
			return nil
		}
		real := filepath.Join(root, strings.TrimPrefix(p, tree))
		if where, ok := followOnDisk(real); ok && where != root && !strings.HasPrefix(where, root+string(filepath.Separator)) {
			t.Errorf("symlink %s -> %s leads to %s, outside %s", p, target, where, root)
		}
		return nil
	})
}
