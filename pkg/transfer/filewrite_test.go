package transfer

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Both ways of writing a file out of a sandbox (writeFileAt on Linux,
// writeFileRoot everywhere) keep the same rules.
func TestWriteFileWays(t *testing.T) {
	ways := map[string]func(x *extractor, root *os.Root, name string, hdr *tar.Header, r io.Reader) error{
		"os.Root": (*extractor).writeFileRoot,
		"fast":    (*extractor).writeFileFast,
	}
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	for way, write := range ways {
		t.Run(way, func(t *testing.T) {
			dir := t.TempDir()
			outside := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(outside, []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			x := &extractor{ctx: context.Background(), copyBuf: make([]byte, 7)} // a small buffer: many writes a file
			defer func() {
				if x.fdDir != nil {
					x.fdDir.Close()
				}
			}()
			hdr := func(size int) *tar.Header {
				return &tar.Header{Typeflag: tar.TypeReg, Mode: 0o4755, Size: int64(size), ModTime: mtime}
			}
			body := strings.Repeat("content ", 10)
			check := func(name string) {
				t.Helper()
				info, err := os.Lstat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if !info.Mode().IsRegular() {
					t.Fatalf("%s is %v, want a regular file", name, info.Mode())
				}
				if info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 || info.Mode().Perm()&^0o755 != 0 {
					t.Errorf("%s has mode %v, want at most 0755 (setuid dropped)", name, info.Mode())
				}
				if !info.ModTime().Equal(mtime) {
					t.Errorf("%s has mtime %v, want %v", name, info.ModTime(), mtime)
				}
				if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != body {
					t.Errorf("%s holds %q, want %q", name, b, body)
				}
			}

			// A new file.
			if err := write(x, root, "new", hdr(len(body)), strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			check("new")

			// A link is replaced, not written through.
			if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			if err := write(x, root, "link", hdr(len(body)), strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			check("link")

			// So is a hard link to a file elsewhere.
			if err := os.Link(outside, filepath.Join(dir, "hard")); err != nil {
				t.Fatal(err)
			}
			if err := write(x, root, "hard", hdr(len(body)), strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			check("hard")
			if b, _ := os.ReadFile(outside); string(b) != "mine" {
				t.Fatalf("a file outside was written through a link: it holds %q", b)
			}

			// A directory is never replaced.
			if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := write(x, root, "d", hdr(len(body)), strings.NewReader(body)); err == nil || !strings.Contains(err.Error(), "cannot replace directory") {
				t.Errorf("writing over a directory: err = %v, want cannot replace directory", err)
			}

			// A stream that breaks mid-file is the stream's error.
			err = write(x, root, "broken", hdr(len(body)), io.MultiReader(strings.NewReader("part"), errReader{errors.New("connection reset")}))
			var se *streamError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), "connection reset") {
				t.Errorf("broken stream: err = %v, want a streamError saying connection reset", err)
			}

			// The zero time leaves the file's time as it was made.
			before := time.Now().Add(-time.Minute)
			if err := write(x, root, "now", &tar.Header{Typeflag: tar.TypeReg, Mode: 0o644}, strings.NewReader("")); err != nil {
				t.Fatal(err)
			}
			if info, err := os.Stat(filepath.Join(dir, "now")); err != nil || info.ModTime().Before(before) {
				t.Errorf("a file without a time: %v, %v; want the time it was made", info, err)
			}

			// Files in another directory, and back: each goes where it is told.
			sub, err := root.OpenRoot("d")
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if err := write(x, sub, "inner", hdr(len(body)), strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			check("d/inner")
			if err := write(x, root, "again", hdr(len(body)), strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			check("again")
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
