package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
)

// copyOutStream runs one copy of a prepared stream into dest (its tree is
// dest/out) and returns the error and the warnings.
func copyOutStream(t *testing.T, ctx context.Context, dest string, entries []entry) (string, error) {
	t.Helper()
	var warn bytes.Buffer
	err := CopyFromSandbox(ctx, &tarRunner{makeTar(t, entries)}, "/workspace/out", dest, Limits{}, &warn)
	return warn.String(), err
}

// destWithSecret is a destination directory next to a directory the
// sandbox must never reach.
func destWithSecret(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	dest := filepath.Join(base, "dest")
	if err := os.MkdirAll(filepath.Join(base, "secret"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	return dest
}

var outDir = entry{name: "./out/", typ: tar.TypeDir}

// A hard link to a symlink makes a second symlink (linkat does not follow
// it), whose relative target now resolves from another directory.
func TestCopyOutHardLinkToSymlink(t *testing.T) {
	dest := destWithSecret(t)
	warn, err := copyOutStream(t, context.Background(), dest, []entry{outDir,
		{name: "./out/d/e/", typ: tar.TypeDir},
		{name: "./out/d/e/s", link: "../../x", typ: tar.TypeSymlink},
		{name: "./out/h", link: "./out/d/e/s", typ: tar.TypeLink},
	})
	if err != nil {
		t.Fatal(err)
	}
	assertLinksInside(t, filepath.Join(dest, "out"))
	if warn == "" {
		t.Fatal("no warning for the skipped links")
	}
}

// A hard link to a symlink the user already had (leading out of the tree)
// must not copy that link under a name the sandbox chose.
func TestCopyOutHardLinkToUsersSymlink(t *testing.T) {
	dest := destWithSecret(t)
	if err := os.MkdirAll(filepath.Join(dest, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dest, "out", "mine")); err != nil {
		t.Fatal(err)
	}
	_, _ = copyOutStream(t, context.Background(), dest, []entry{outDir, {name: "./out/h", link: "./out/mine", typ: tar.TypeLink}})
	if target, err := os.Readlink(filepath.Join(dest, "out", "h")); err == nil {
		t.Fatalf("the sandbox made h -> %s", target)
	}
}

// A link planted through a later `x -> .`, then a bad entry: the stream
// fails, and the escaping link must not stay behind.
func TestCopyOutFailingStreamLeavesNoEscapingLink(t *testing.T) {
	dest := destWithSecret(t)
	_, err := copyOutStream(t, context.Background(), dest, []entry{outDir,
		{name: "./out/l", link: "x/x/../../secret", typ: tar.TypeSymlink},
		{name: "./out/x", link: ".", typ: tar.TypeSymlink},
		{name: "/etc/evil", typ: tar.TypeReg, body: "x"},
	})
	if err == nil {
		t.Fatal("a stream with an absolute name was accepted")
	}
	assertLinksInside(t, filepath.Join(dest, "out"))
}

// Two copies into one tree compose: each is harmless alone.
func TestCopyOutSuccessiveCopiesCompose(t *testing.T) {
	for name, second := range map[string][]entry{
		"x -> .":    {outDir, {name: "./out/x", link: ".", typ: tar.TypeSymlink}},
		"x -> y/..": {outDir, {name: "./out/x", link: "y/..", typ: tar.TypeSymlink}},
		"x -> ./":   {outDir, {name: "./out/x", link: "./", typ: tar.TypeSymlink}},
		"x -> a, a -> .": {outDir, {name: "./out/x", link: "a", typ: tar.TypeSymlink},
			{name: "./out/a", link: ".", typ: tar.TypeSymlink}},
	} {
		t.Run(name, func(t *testing.T) {
			dest := destWithSecret(t)
			if _, err := copyOutStream(t, context.Background(), dest, []entry{outDir, {name: "./out/l", link: "x/x/../../secret", typ: tar.TypeSymlink}}); err != nil {
				t.Fatal(err)
			}
			if _, err := copyOutStream(t, context.Background(), dest, second); err != nil {
				t.Fatal(err)
			}
			assertLinksInside(t, filepath.Join(dest, "out"))
		})
	}
}

// A link the user already has that climbs out of the tree must not become
// a way out for the sandbox's links.
func TestCopyOutLinkThroughUsersLink(t *testing.T) {
	dest := destWithSecret(t)
	if err := os.MkdirAll(filepath.Join(dest, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../..", filepath.Join(dest, "out", "up")); err != nil {
		t.Fatal(err)
	}
	_, _ = copyOutStream(t, context.Background(), dest, []entry{outDir, {name: "./out/l", link: "up/secret", typ: tar.TypeSymlink}})
	if target, err := os.Readlink(filepath.Join(dest, "out", "l")); err == nil {
		t.Fatalf("the sandbox made l -> %s through the user's link", target)
	}
}

// A symlink target of 78 KiB made the resolver quadratic (81 s of CPU)
// and the warning quoted all of it.
func TestCopyOutLongLinkTarget(t *testing.T) {
	dest := destWithSecret(t)
	long := strings.Repeat("a/", 40_000) + "x"
	start := time.Now()
	warn, err := copyOutStream(t, context.Background(), dest, []entry{outDir,
		{name: "./out/a", typ: tar.TypeDir},
		{name: "./out/l", link: long, typ: tar.TypeSymlink},
		{name: "./out/m", link: strings.Repeat("b/", 1000) + "\x1b]0;pwned\x07", typ: tar.TypeSymlink},
	})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v", took)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(warn) > 4096 {
		t.Fatalf("the warning is %d bytes long", len(warn))
	}
	if _, err := os.Lstat(filepath.Join(dest, "out", "l")); err == nil {
		t.Fatal("a link target longer than PATH_MAX was kept")
	}
	assertPrintable(t, warn)
}

// An extraction stops when its context ends, whatever the sandbox sends.
func TestCopyOutHonoursCancellation(t *testing.T) {
	dest := destWithSecret(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := copyOutStream(t, ctx, dest, []entry{outDir, {name: "./out/f", typ: tar.TypeReg, body: "x"}})
	if err == nil {
		t.Fatal("a cancelled copy succeeded")
	}
	if _, err := os.Stat(filepath.Join(dest, "out", "f")); err == nil {
		t.Fatal("a cancelled copy went on writing")
	}
}

// Errors that quote a name the sandbox chose reach a terminal: no escape
// sequences, and no name of any length.
func TestCopyOutErrorsArePrintable(t *testing.T) {
	evil := "\x1b]0;pwned\x07\x1b[2J" + strings.Repeat("n", 200)
	for name, entries := range map[string][]entry{
		"mkdir below a file": {outDir, {name: "./out/" + evil, typ: tar.TypeReg, body: "x"}, {name: "./out/" + evil + "/f", typ: tar.TypeReg, body: "x"}},
		"file over a dir":    {outDir, {name: "./out/" + evil + "/", typ: tar.TypeDir}, {name: "./out/" + evil, typ: tar.TypeReg, body: "x"}},
		"link over a dir":    {outDir, {name: "./out/" + evil + "/", typ: tar.TypeDir}, {name: "./out/" + evil, link: "a", typ: tar.TypeSymlink}},
		"long name":          {outDir, {name: "./out/" + strings.Repeat(evil+"/", 30) + "f", typ: tar.TypeReg, body: "x"}},
	} {
		t.Run(name, func(t *testing.T) {
			warn, err := copyOutStream(t, context.Background(), destWithSecret(t), entries)
			if err == nil {
				t.Fatal("want an error")
			}
			assertPrintable(t, err.Error())
			assertPrintable(t, warn)
			if len(err.Error()) > 2048 {
				t.Fatalf("error of %d bytes: %.200q…", len(err.Error()), err.Error())
			}
		})
	}
}

func assertPrintable(t *testing.T, s string) {
	t.Helper()
	for _, r := range s {
		if r != '\n' && unicode.IsControl(r) {
			t.Fatalf("control character %q in %.300q", r, s)
		}
	}
}

// Modes from the sandbox pass through the user's umask, as tar -x applies
// it for a user other than root: no world-writable files in a project.
func TestCopyOutAppliesUmask(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dest := destWithSecret(t)
	if err := os.MkdirAll(filepath.Join(dest, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An existing file keeps no mode of its own either.
	if err := os.WriteFile(filepath.Join(dest, "out", "old"), []byte("o"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "./out/", Typeflag: tar.TypeDir, Mode: 0o777},
		{Name: "./out/d/", Typeflag: tar.TypeDir, Mode: 0o777},
		{Name: "./out/f", Typeflag: tar.TypeReg, Mode: 0o777, Size: 1},
		{Name: "./out/old", Typeflag: tar.TypeReg, Mode: 0o666, Size: 1},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			_, _ = tw.Write([]byte("x"))
		}
	}
	_ = tw.Close()
	if err := CopyFromSandbox(context.Background(), &tarRunner{buf.Bytes()}, "/workspace/out", dest, Limits{}, io.Discard); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"d": 0o755, "f": 0o755, "old": 0o644} {
		info, err := os.Stat(filepath.Join(dest, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", name, got, want)
		}
	}
}

// A name that does not exist yet can later become a link to the directory
// that holds a link of the user's that climbs.
func TestCopyOutLaterRedirectOntoUsersLink(t *testing.T) {
	dest := destWithSecret(t)
	if err := os.MkdirAll(filepath.Join(dest, "out", "q"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../..", filepath.Join(dest, "out", "q", "up")); err != nil {
		t.Fatal(err)
	}
	_, _ = copyOutStream(t, context.Background(), dest, []entry{outDir, {name: "./out/l", link: "m/up/secret", typ: tar.TypeSymlink}})
	_, _ = copyOutStream(t, context.Background(), dest, []entry{outDir, {name: "./out/m", link: "q", typ: tar.TypeSymlink}})
	if target, err := os.Readlink(filepath.Join(dest, "out", "l")); err == nil {
		t.Fatalf("kept l -> %s, which now leads through the user's q/up", target)
	}
	// Without such a link, a link to a name not there yet is kept.
	clean := destWithSecret(t)
	if warn, err := copyOutStream(t, context.Background(), clean, []entry{outDir, {name: "./out/l", link: "later/file", typ: tar.TypeSymlink}}); err != nil || warn != "" {
		t.Fatalf("err=%v warn=%q", err, warn)
	}
}
