package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// hostRunner is the host runner shared by the shell and copy tests.
type hostRunner = testexec.HostRunner

func toolDir(t *testing.T, without ...string) string { return testexec.ToolDir(t, without...) }

func runners(t *testing.T) map[string]func() *hostRunner {
	return map[string]func() *hostRunner{
		"host tar":    func() *hostRunner { return &hostRunner{} },
		"busybox tar": func() *hostRunner { return &hostRunner{Path: toolDir(t)} },
	}
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "-> " + target
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCopyRoundTrip(t *testing.T) {
	for name, newRunner := range runners(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			local := t.TempDir()
			remote := t.TempDir() // stands in for the sandbox's filesystem
			src := filepath.Join(local, "repo")
			files := map[string]string{"README.md": "hi\n", "src/main.go": "package main\n", "src/deep/a b.txt": "spaces\n", "-dash": "x"}
			writeTree(t, src, files)
			if err := os.Symlink("src/main.go", filepath.Join(src, "link")); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(src, "src/main.go"), 0o755); err != nil {
				t.Fatal(err)
			}
			r := newRunner()

			// Into an existing directory.
			if err := CopyToSandbox(ctx, r, src, remote, io.Discard); err != nil {
				t.Fatalf("copy in: %v", err)
			}
			want := readTree(t, src)
			if got := readTree(t, filepath.Join(remote, "repo")); !equal(got, want) {
				t.Fatalf("copied in %v, want %v", got, want)
			}
			// To a new name, and into a directory named with a trailing slash.
			if err := CopyToSandbox(ctx, r, src, remote+"/renamed", io.Discard); err != nil {
				t.Fatal(err)
			}
			if err := CopyToSandbox(ctx, r, src, remote+"/new/dir/", io.Discard); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"renamed", "new/dir/repo"} {
				if got := readTree(t, filepath.Join(remote, p)); !equal(got, want) {
					t.Fatalf("%s: %v, want %v", p, got, want)
				}
			}
			if leftovers, _ := filepath.Glob(remote + "/.agentkernel-cp*"); len(leftovers) > 0 {
				t.Fatalf("staging directories left behind: %v", leftovers)
			}

			// And back out.
			back := t.TempDir()
			if err := CopyFromSandbox(ctx, r, remote+"/repo", back, Limits{}, io.Discard); err != nil {
				t.Fatalf("copy out: %v", err)
			}
			if got := readTree(t, filepath.Join(back, "repo")); !equal(got, want) {
				t.Fatalf("copied out %v, want %v", got, want)
			}
			info, err := os.Stat(filepath.Join(back, "repo/src/main.go"))
			if err != nil || info.Mode().Perm() != 0o755 {
				t.Fatalf("mode not kept: %v %v", info, err)
			}
			if err := CopyFromSandbox(ctx, r, remote+"/repo/README.md", filepath.Join(back, "readme.txt"), Limits{}, io.Discard); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(back, "readme.txt")); string(b) != "hi\n" {
				t.Fatalf("single file out: %q", b)
			}
		})
	}
}

func TestCopyErrors(t *testing.T) {
	ctx := context.Background()
	r := &hostRunner{}
	remote := t.TempDir()
	for name, mk := range runners(t) {
		for _, missing := range []string{remote + "/missing", remote + "/no/such/dir/file"} {
			var nsf *NoSuchFileError
			err := CopyFromSandbox(ctx, mk(), missing, t.TempDir(), Limits{}, io.Discard)
			if !errors.As(err, &nsf) || err.Error() != "no such file in the sandbox: "+missing {
				t.Fatalf("%s: missing remote file: %v", name, err)
			}
		}
	}
	// Without tar, cat says the same.
	var nsf *NoSuchFileError
	if err := CopyFromSandbox(ctx, &hostRunner{Path: toolDir(t, "tar")}, remote+"/missing", t.TempDir(), Limits{}, io.Discard); !errors.As(err, &nsf) {
		t.Fatalf("missing remote file without tar: %v", err)
	}
	if err := CopyToSandbox(ctx, r, filepath.Join(t.TempDir(), "nope"), remote, io.Discard); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing local file: %v", err)
	}
	if err := CopyFromSandbox(ctx, r, "/", t.TempDir(), Limits{}, io.Discard); err == nil {
		t.Fatal("copying / must be refused")
	}
}

func TestCopyWithoutTar(t *testing.T) {
	ctx := context.Background()
	r := &hostRunner{Path: toolDir(t, "tar")}
	local := t.TempDir()
	remote := t.TempDir()
	writeTree(t, local, map[string]string{"f.txt": "single\n", "dir/x": "x"})
	var warn bytes.Buffer
	if err := CopyToSandbox(ctx, r, filepath.Join(local, "f.txt"), remote, &warn); err != nil {
		t.Fatalf("fallback copy in: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(remote, "f.txt")); string(b) != "single\n" {
		t.Fatalf("got %q", b)
	}
	if err := CopyToSandbox(ctx, r, filepath.Join(local, "f.txt"), remote+"/new/sub/renamed.txt", io.Discard); err != nil {
		t.Fatalf("fallback copy to a new name below missing directories: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(remote, "new/sub/renamed.txt")); string(b) != "single\n" {
		t.Fatalf("got %q", b)
	}
	if !strings.Contains(warn.String(), "no tar") {
		t.Fatalf("no warning: %q", warn.String())
	}
	out := t.TempDir()
	if err := CopyFromSandbox(ctx, r, remote+"/f.txt", filepath.Join(out, "g.txt"), Limits{}, io.Discard); err != nil {
		t.Fatalf("fallback copy out: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "g.txt")); string(b) != "single\n" {
		t.Fatalf("got %q", b)
	}
	if err := CopyToSandbox(ctx, r, filepath.Join(local, "dir"), remote, io.Discard); !errors.Is(err, ErrNoTar) {
		t.Fatalf("a directory without tar: %v", err)
	}
	if err := CopyFromSandbox(ctx, r, remote, out, Limits{}, io.Discard); !errors.Is(err, ErrNoTar) {
		t.Fatalf("a directory out without tar: %v", err)
	}
}

// tarRunner plays a hostile sandbox: whatever is asked, it answers with a
// prepared tar stream.
type tarRunner struct{ stream []byte }

func (r *tarRunner) Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error {
	_, err := stdout.Write(r.stream)
	return err
}

type entry struct {
	name, link string
	typ        byte
	body       string
}

func makeTar(t testing.TB, entries []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCopyFromHostileSandbox(t *testing.T) {
	dir := entry{name: "./out/", typ: tar.TypeDir}
	cases := map[string]struct {
		entries []entry
		refused bool // the whole copy fails; otherwise the entry is skipped
	}{
		"absolute path":          {[]entry{dir, {name: "/etc/evil", typ: tar.TypeReg, body: "x"}}, true},
		"dot-dot":                {[]entry{dir, {name: "./out/../../evil", typ: tar.TypeReg, body: "x"}}, true},
		"outside requested path": {[]entry{dir, {name: "./other/evil", typ: tar.TypeReg, body: "x"}}, true},
		"symlink out then write": {[]entry{dir, {name: "./out/l", link: "../../..", typ: tar.TypeSymlink}, {name: "./out/l/evil", typ: tar.TypeReg, body: "x"}}, false},
		"absolute symlink":       {[]entry{dir, {name: "./out/l", link: "/etc", typ: tar.TypeSymlink}, {name: "./out/l/evil", typ: tar.TypeReg, body: "x"}}, false},
		"hard link out":          {[]entry{dir, {name: "./out/h", link: "/etc/passwd", typ: tar.TypeLink}}, false},
		"device":                 {[]entry{dir, {name: "./out/dev", typ: tar.TypeChar}}, false},
		"top twice":              {[]entry{dir, dir}, true},
		// Inside by name, outside through an earlier link of the same stream.
		"link chain": {[]entry{dir, {name: "./out/d/p/q/", typ: tar.TypeDir}, {name: "./out/d/p/q/up", link: "../..", typ: tar.TypeSymlink},
			{name: "./out/d/p/q/up/evil", link: "../../../somewhere", typ: tar.TypeSymlink}}, false},
		// Inside when written; a later link makes it lead out.
		"later link redirects":   {[]entry{dir, {name: "./out/a", link: "b/../../evil", typ: tar.TypeSymlink}}, false},
		"later link redirects 2": {[]entry{dir, {name: "./out/a", link: "b/../x", typ: tar.TypeSymlink}, {name: "./out/b", link: ".", typ: tar.TypeSymlink}}, false},
		"link loop":              {[]entry{dir, {name: "./out/a", link: "b", typ: tar.TypeSymlink}, {name: "./out/b", link: "a/x", typ: tar.TypeSymlink}}, false},
		"below a file":           {[]entry{{name: "./out", typ: tar.TypeReg, body: "f"}, {name: "./out/x", typ: tar.TypeReg, body: "x"}}, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			dest := filepath.Join(base, "dest")
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			var warn bytes.Buffer
			err := CopyFromSandbox(context.Background(), &tarRunner{makeTar(t, tc.entries)}, "/workspace/out", dest, Limits{}, &warn)
			if tc.refused && err == nil {
				t.Fatal("a hostile stream was accepted")
			}
			if !tc.refused && (err != nil || warn.Len() == 0) && !strings.Contains(name, "write") {
				t.Fatalf("want a skipped entry with a warning; err=%v warn=%q", err, warn.String())
			}
			assertLinksInside(t, dest)
			// Whatever happened, nothing may exist outside dest.
			entries, _ := os.ReadDir(base)
			if len(entries) != 1 {
				t.Fatalf("files written outside the destination: %v", entries)
			}
			if _, err := os.Stat("/etc/evil"); err == nil {
				t.Fatal("wrote /etc/evil")
			}
			for p := range readTree(t, base) {
				if strings.Contains(p, "evil") && !strings.HasPrefix(p, "dest/out/") {
					t.Fatalf("wrote %s", p)
				}
			}
		})
	}
}

func TestParseFileSpec(t *testing.T) {
	cases := map[string]FileSpec{
		"demo:/workspace/x":  {Sandbox: "demo", Path: "/workspace/x"},
		"demo:x/y":           {Sandbox: "demo", Path: "/workspace/x/y"},
		"demo:":              {Sandbox: "demo", Path: "/workspace/"},
		"demo:/tmp/":         {Sandbox: "demo", Path: "/tmp/"},
		"demo:/a/../b":       {Sandbox: "demo", Path: "/b"},
		"ns/demo:/w":         {Namespace: "ns", Sandbox: "demo", Path: "/w"},
		"./demo:/x":          {Path: "./demo:/x"},
		"/abs/demo:x":        {Path: "/abs/demo:x"},
		"local.txt":          {Path: "local.txt"},
		"Not_A_Sandbox:file": {Path: "Not_A_Sandbox:file"},
		"demo:.":             {Sandbox: "demo", Path: "/workspace/"},
	}
	for in, want := range cases {
		got, err := ParseFileSpec(in)
		if err != nil || got != want {
			t.Errorf("ParseFileSpec(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := ParseFileSpec(""); err == nil {
		t.Error("empty spec accepted")
	}
}

func FuzzParseFileSpec(f *testing.F) {
	for _, s := range []string{"demo:/x", "a/b:c", "./x:y", ":", "demo:../../..", "x:\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseFileSpec(s)
		if err != nil || !spec.Remote() {
			return
		}
		if sandbox.ValidateName(spec.Sandbox) != nil {
			t.Fatalf("%q: invalid sandbox name %q accepted", s, spec.Sandbox)
		}
		if !strings.HasPrefix(spec.Path, "/") || strings.Contains(spec.Path, "/../") || strings.ContainsRune(spec.Path, 0) {
			t.Fatalf("%q: remote path %q is not clean and absolute", s, spec.Path)
		}
	})
}

// FuzzExtractTar feeds arbitrary streams to the extractor: it may refuse
// them, but must never write outside its destination or panic.
func FuzzExtractTar(f *testing.F) {
	f.Add(makeTar(f, []entry{{name: "./out/", typ: tar.TypeDir}, {name: "./out/a", typ: tar.TypeReg, body: "a"}}))
	f.Add(makeTar(f, []entry{{name: "./out/", typ: tar.TypeDir}, {name: "./out/l", link: "..", typ: tar.TypeSymlink}, {name: "./out/l/x", typ: tar.TypeReg, body: "x"}}))
	f.Add(makeTar(f, []entry{{name: "./out/", typ: tar.TypeDir}, {name: "./out/d/p/q/up", link: "../..", typ: tar.TypeSymlink}, {name: "./out/d/p/q/up/e", link: "../../../x", typ: tar.TypeSymlink}}))
	f.Add(makeTar(f, []entry{{name: "./out/", typ: tar.TypeDir}, {name: "./out/a", link: "b/../x", typ: tar.TypeSymlink}, {name: "./out/b", link: ".", typ: tar.TypeSymlink}}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		base := t.TempDir()
		dest := filepath.Join(base, "dest")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = CopyFromSandbox(context.Background(), &tarRunner{stream}, "/workspace/out", dest, Limits{MaxBytes: 1 << 20, MaxFiles: 1000}, io.Discard)
		entries, _ := os.ReadDir(base)
		if len(entries) != 1 {
			t.Fatalf("wrote outside the destination: %v", entries)
		}
		assertLinksInside(t, dest)
	})
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A large file streams through without being held in memory.
func TestCopyLargeFileChecksum(t *testing.T) {
	if testing.Short() {
		t.Skip("large copy skipped in -short mode")
	}
	ctx := context.Background()
	local := t.TempDir()
	remote := t.TempDir()
	src := filepath.Join(local, "big.bin")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for i := 0; i < 64; i++ {
		chunk[i] = byte(i)
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		h.Write(chunk)
	}
	f.Close()
	want := h.Sum(nil)
	r := &hostRunner{}
	if err := CopyToSandbox(ctx, r, src, remote, io.Discard); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := CopyFromSandbox(ctx, r, remote+"/big.bin", out, Limits{}, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(b); !bytes.Equal(got[:], want) {
		t.Fatal("checksum differs after a round trip")
	}
}

// assertLinksInside checks, the way the kernel would follow them and with
// code of its own (not the extractor's), that every symlink under dir
// resolves inside dir.
func assertLinksInside(t *testing.T, dir string) {
	t.Helper()
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if where, ok := followOnDisk(p); !ok || (where != root && !strings.HasPrefix(where, root+string(filepath.Separator))) {
			target, _ := os.Readlink(p)
			t.Errorf("symlink %s -> %s leads to %s, outside %s", p, target, where, root)
		}
		return nil
	})
}

// followOnDisk resolves an absolute path component by component through
// the real filesystem's links (a missing component is taken as a plain
// name); ok is false for a loop.
func followOnDisk(p string) (string, bool) {
	pending := strings.Split(p, "/")
	at := "/"
	for hops := 0; len(pending) > 0; {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			at = filepath.Dir(at)
			continue
		}
		next := filepath.Join(at, c)
		if info, err := os.Lstat(next); err == nil && info.Mode()&fs.ModeSymlink != 0 {
			if hops++; hops > 40 {
				return next, false
			}
			link, _ := os.Readlink(next)
			if filepath.IsAbs(link) {
				at = "/"
			}
			pending = append(strings.Split(link, "/"), pending...)
			continue
		}
		at = next
	}
	return at, true
}

func TestCopyFromSandboxRefusesSparseFiles(t *testing.T) {
	// A PAX 0.1 GNU sparse file, as GNU tar writes it: one byte on the
	// wire, 4 GiB on disk. Go's tar.Writer will not write these records, so
	// the blocks are made by hand.
	var stream bytes.Buffer
	stream.Write(rawTarBlock("./out/", tar.TypeDir, 0))
	pax := paxRecord("GNU.sparse.major", "0") + paxRecord("GNU.sparse.minor", "1") +
		paxRecord("GNU.sparse.size", "4294967296") + paxRecord("GNU.sparse.numblocks", "1") + paxRecord("GNU.sparse.map", "4294967295,1")
	stream.Write(rawTarBlock("./out/PaxHeaders/big", tar.TypeXHeader, int64(len(pax))))
	stream.Write(padBlock([]byte(pax)))
	stream.Write(rawTarBlock("./out/big", tar.TypeReg, 1))
	stream.Write(padBlock([]byte("x")))
	stream.Write(make([]byte, 1024))
	// The stream is valid, and Go's reader would expand it to 4 GiB.
	tr := tar.NewReader(bytes.NewReader(stream.Bytes()))
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	if hdr, err := tr.Next(); err != nil || hdr.Size != 1<<32 {
		t.Fatalf("hand-made sparse entry: %v, %v", hdr, err)
	}
	dest := t.TempDir()
	err := CopyFromSandbox(context.Background(), &tarRunner{stream.Bytes()}, "/workspace/out", dest, Limits{}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "sparse") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dest, "out", "big")); err == nil {
		t.Fatal("the sparse file was written")
	}
}

func TestCopyFromSandboxLimits(t *testing.T) {
	many := []entry{{name: "./out/", typ: tar.TypeDir}}
	for i := 0; i < 20; i++ {
		many = append(many, entry{name: fmt.Sprintf("./out/f%d", i), typ: tar.TypeReg, body: strings.Repeat("x", 100)})
	}
	stream := makeTar(t, many)
	for name, tc := range map[string]struct {
		limits Limits
		want   string
	}{
		"bytes": {Limits{MaxBytes: 1000}, "more than 1000 bytes (the limit of maxBytes)"},
		"files": {Limits{MaxFiles: 10}, "more than 10 files (the limit of maxFiles)"},
		"fits":  {Limits{MaxBytes: 2000, MaxFiles: 21}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			err := CopyFromSandbox(context.Background(), &tarRunner{stream}, "/workspace/out", t.TempDir(), tc.limits, io.Discard)
			var le *LimitError
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (!errors.As(err, &le) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A header that claims more than the limit stops before a byte is written.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "./out", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40})
	dest := t.TempDir()
	var le *LimitError
	if err := CopyFromSandbox(context.Background(), &tarRunner{buf.Bytes()}, "/workspace/out", dest, Limits{MaxBytes: 1 << 20}, io.Discard); !errors.As(err, &le) {
		t.Fatalf("err = %v", err)
	}
	if entries, _ := os.ReadDir(dest); len(entries) != 0 {
		t.Fatalf("wrote %v", entries)
	}
}

func TestDefaultLimitsFollowTheSandbox(t *testing.T) {
	s := sandbox.NewSpec("demo", "ns")
	s.EphemeralStorage = resource.MustParse("4Gi")
	l := DefaultLimits(s.Pod())
	if l.MaxBytes != 4<<30 || l.MaxFiles != (4<<30)/4096 {
		t.Fatalf("limits = %+v", l)
	}
	if l := DefaultLimits(&corev1.Pod{}); l.MaxBytes != fallbackMaxBytes || l.MaxFiles != fallbackMaxBytes/4096 {
		t.Fatalf("fallback limits = %+v", l)
	}
}

// cp ./link demo:... copies what the link points at, under the link's name.
func TestCopyToSandboxFollowsASymlinkedSource(t *testing.T) {
	for name, mk := range runners(t) {
		t.Run(name, func(t *testing.T) {
			local := t.TempDir()
			writeTree(t, filepath.Join(local, "real"), map[string]string{"a.txt": "A", "sub/b.txt": "B"})
			if err := os.Symlink("real", filepath.Join(local, "link")); err != nil {
				t.Fatal(err)
			}
			remote := t.TempDir()
			if err := CopyToSandbox(context.Background(), mk(), filepath.Join(local, "link"), remote+"/", io.Discard); err != nil {
				t.Fatal(err)
			}
			got := readTree(t, filepath.Join(remote, "link"))
			if !equal(got, map[string]string{"a.txt": "A", "sub/b.txt": "B"}) {
				t.Fatalf("copied %v", got)
			}
		})
	}
}

// rawTarBlock is a ustar header block with a correct checksum.
func rawTarBlock(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padBlock(data []byte) []byte {
	return append(data, make([]byte, (512-len(data)%512)%512)...)
}

// paxRecord is "LEN key=value\n", LEN counting itself.
func paxRecord(k, v string) string {
	body := " " + k + "=" + v + "\n"
	n := len(body) + 1
	for len(fmt.Sprint(n))+len(body) != n {
		n++
	}
	return fmt.Sprint(n) + body
}
