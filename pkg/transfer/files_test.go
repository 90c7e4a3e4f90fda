package transfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// fileRunners: testexec.FileRunners.
func fileRunners(t *testing.T) map[string]*hostRunner { return testexec.FileRunners(t) }

func TestReadFile(t *testing.T) {
	for name, r := range fileRunners(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			f := filepath.Join(dir, "-a file")
			if err := os.WriteFile(f, []byte("0123456789"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				offset, limit int64
				want          string
				truncated     bool
			}{
				{0, 100, "0123456789", false},
				{0, 10, "0123456789", false},
				{0, 9, "012345678", true},
				{3, 4, "3456", true},
				{3, 100, "3456789", false},
				{10, 5, "", false},
				{0, 0, "", true},
			} {
				got, truncated, err := ReadFile(ctx, r, f, c.offset, c.limit)
				if err != nil || string(got) != c.want || truncated != c.truncated {
					t.Errorf("ReadFile(offset %d, limit %d) = %q, %v, %v; want %q, %v", c.offset, c.limit, got, truncated, err, c.want, c.truncated)
				}
			}
			var nsf *NoSuchFileError
			if _, _, err := ReadFile(ctx, r, filepath.Join(dir, "missing"), 0, 10); !errors.As(err, &nsf) {
				t.Errorf("missing file: %v", err)
			}
			var isDir *IsDirectoryError
			if _, _, err := ReadFile(ctx, r, dir, 0, 10); !errors.As(err, &isDir) {
				t.Errorf("directory: %v", err)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	for name, r := range fileRunners(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			f := filepath.Join(dir, "new/deep/$(touch x) file")
			content := []byte("line 1\n\x00binary\xff")
			if err := WriteFile(ctx, r, f, bytes.NewReader(content), WriteOptions{Mode: 0o750}); err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(ctx, r, f, strings.NewReader("more"), WriteOptions{Append: true}); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(f)
			if err != nil || string(got) != string(content)+"more" {
				t.Fatalf("file holds %q, %v", got, err)
			}
			if info, _ := os.Stat(f); info.Mode().Perm() != 0o750 {
				t.Errorf("mode %v, want 0750", info.Mode().Perm())
			}
			if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
				t.Fatal("the path was run as shell code")
			}
			if err := WriteFile(ctx, r, f, strings.NewReader("short"), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(f); string(got) != "short" {
				t.Fatalf("overwrite left %q", got)
			}
			var isDir *IsDirectoryError
			if err := WriteFile(ctx, r, dir, strings.NewReader("x"), WriteOptions{}); !errors.As(err, &isDir) {
				t.Errorf("directory: %v", err)
			}
			if err := WriteFile(ctx, r, f, strings.NewReader("x"), WriteOptions{Mode: 0o17777}); err == nil {
				t.Error("a mode beyond 7777 was accepted")
			}
		})
	}
}

func TestListDir(t *testing.T) {
	for name, r := range fileRunners(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"a.txt": "12345", ".hidden": "", "..dots": "xy", "new\nline": "n", "sub/inner": "x"})
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			got, more, err := ListDir(ctx, r, dir, 100)
			if err != nil || more {
				t.Fatalf("ListDir = %v, %v, %v", got, more, err)
			}
			want := map[string]DirEntry{
				"a.txt":     {"a.txt", "file", 5},
				".hidden":   {".hidden", "file", 0},
				"..dots":    {"..dots", "file", 2},
				"new\nline": {"new\nline", "file", 1},
				"sub":       {"sub", "directory", -1},
				"link":      {"link", "symlink", -1},
			}
			if len(got) != len(want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			for _, e := range got {
				if want[e.Name] != e {
					t.Errorf("entry %+v, want %+v", e, want[e.Name])
				}
			}
			got, more, err = ListDir(ctx, r, dir, 2)
			if err != nil || !more || len(got) != 2 {
				t.Fatalf("limited ListDir = %v, %v, %v", got, more, err)
			}
			if got, more, err := ListDir(ctx, r, filepath.Join(dir, "sub"), 1); err != nil || more || len(got) != 1 {
				t.Fatalf("exactly the limit: %v, %v, %v", got, more, err)
			}
			empty := t.TempDir()
			if got, more, err := ListDir(ctx, r, empty, 10); err != nil || more || len(got) != 0 {
				t.Fatalf("empty directory: %v, %v, %v", got, more, err)
			}
			var nsf *NoSuchFileError
			if _, _, err := ListDir(ctx, r, filepath.Join(dir, "missing"), 10); !errors.As(err, &nsf) {
				t.Errorf("missing: %v", err)
			}
			var notDir *NotDirectoryError
			if _, _, err := ListDir(ctx, r, filepath.Join(dir, "a.txt"), 10); !errors.As(err, &notDir) {
				t.Errorf("file: %v", err)
			}
		})
	}
}

func TestListDirWithoutStat(t *testing.T) {
	r := &hostRunner{Path: toolDir(t, "stat")} // busybox's tools, no stat
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a": "123"})
	got, _, err := ListDir(context.Background(), r, dir, 10)
	if err != nil || len(got) != 1 || got[0] != (DirEntry{"a", "file", -1}) {
		t.Fatalf("ListDir = %v, %v", got, err)
	}
}

// floodRunner is a hostile sandbox that answers every command with an
// endless stream.
type floodRunner struct{}

func (floodRunner) Run(ctx context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
	chunk := bytes.Repeat([]byte("fname\x00"), 1<<10)
	for ctx.Err() == nil {
		if _, err := stdout.Write(chunk); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func TestHostileSandboxCannotFloodReadsAndListings(t *testing.T) {
	ctx := context.Background()
	got, truncated, err := ReadFile(ctx, floodRunner{}, "/x", 0, 1000)
	if err != nil || !truncated || len(got) != 1000 {
		t.Fatalf("ReadFile = %d bytes, %v, %v", len(got), truncated, err)
	}
	if _, _, err := ListDir(ctx, floodRunner{}, "/x", 10); err == nil || !strings.Contains(err.Error(), "more than an honest listing") {
		t.Fatalf("ListDir: %v", err)
	}
}

func TestParseListingRefusesWhatItDoesNotExpect(t *testing.T) {
	for _, in := range []string{
		"",                       // no end marker
		"fa\x00",                 // no end marker
		"xname\x00\x00",          // unknown type
		"f\x00\x00",              // empty name
		"f..\x00\x00",            // ..
		"fa/b\x00\x00",           // a path, not a name
		"fa\x00fb\x00fc\x00\x00", // more entries than asked for
		"m\x00fa\x00\x00",        // entries after the "more" marker
	} {
		if e, _, err := parseListing([]byte(in), 2); err == nil {
			t.Errorf("parseListing(%q) = %v, want an error", in, e)
		}
	}
	e, _, err := parseListing([]byte("fa\x00fb\x00\x001\nnot a number\n"), 2)
	if err != nil || e[0].Size != -1 || e[1].Size != -1 {
		t.Errorf("bad sizes: %v, %v", e, err)
	}
}

func FuzzParseListing(f *testing.F) {
	f.Add([]byte("fa\x00dsub\x00lln\x00m\x00\x0012\n"), 3)
	f.Add([]byte("\x00"), 1)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max <= 0 || max > 1000 {
			return
		}
		entries, _, err := parseListing(b, max)
		if err != nil {
			return
		}
		if len(entries) > max {
			t.Fatalf("%d entries, at most %d asked for", len(entries), max)
		}
		for _, e := range entries {
			if e.Name == "" || strings.ContainsAny(e.Name, "/\x00") || e.Name == "." || e.Name == ".." {
				t.Fatalf("bad name %q", e.Name)
			}
			if e.Type != "file" && e.Size != -1 {
				t.Fatalf("size for a %s", e.Type)
			}
		}
	})
}
