package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	utilexec "k8s.io/client-go/util/exec"
)

// hostRunner runs the sandbox-side commands on this machine with a chosen
// PATH, so the real shell scripts meet a real tar (GNU tar, or busybox's).
type hostRunner struct {
	path  string
	calls [][]string
}

func (r *hostRunner) Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error {
	r.calls = append(r.calls, command)
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Env = []string{"PATH=" + r.path}
	if r.path == "" {
		cmd.Env = os.Environ()
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return utilexec.CodeExitError{Err: err, Code: exitErr.ExitCode()}
	}
	return err
}

// toolDir makes a PATH directory of busybox applets (all of them but the
// ones left out), or skips when busybox is not installed.
func toolDir(t *testing.T, without ...string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox is not installed (apt-get install busybox-static)")
	}
	dir := t.TempDir()
	skip := map[string]bool{}
	for _, w := range without {
		skip[w] = true
	}
	for _, applet := range []string{"sh", "tar", "cat", "mkdir", "mktemp", "mv", "rm", "env", "test", "["} {
		if !skip[applet] {
			if err := os.Symlink(bb, filepath.Join(dir, applet)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func runners(t *testing.T) map[string]func() *hostRunner {
	return map[string]func() *hostRunner{
		"host tar":    func() *hostRunner { return &hostRunner{} },
		"busybox tar": func() *hostRunner { return &hostRunner{path: toolDir(t)} },
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
			if err := CopyFromSandbox(ctx, r, remote+"/repo", back, io.Discard); err != nil {
				t.Fatalf("copy out: %v", err)
			}
			if got := readTree(t, filepath.Join(back, "repo")); !equal(got, want) {
				t.Fatalf("copied out %v, want %v", got, want)
			}
			info, err := os.Stat(filepath.Join(back, "repo/src/main.go"))
			if err != nil || info.Mode().Perm() != 0o755 {
				t.Fatalf("mode not kept: %v %v", info, err)
			}
			if err := CopyFromSandbox(ctx, r, remote+"/repo/README.md", filepath.Join(back, "readme.txt"), io.Discard); err != nil {
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
	err := CopyFromSandbox(ctx, r, remote+"/missing", t.TempDir(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), "exit code") {
		t.Fatalf("missing remote file: %v", err)
	}
	if err := CopyToSandbox(ctx, r, filepath.Join(t.TempDir(), "nope"), remote, io.Discard); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing local file: %v", err)
	}
	if err := CopyFromSandbox(ctx, r, "/", t.TempDir(), io.Discard); err == nil {
		t.Fatal("copying / must be refused")
	}
}

func TestCopyWithoutTar(t *testing.T) {
	ctx := context.Background()
	r := &hostRunner{path: toolDir(t, "tar")}
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
	if err := CopyFromSandbox(ctx, r, remote+"/f.txt", filepath.Join(out, "g.txt"), io.Discard); err != nil {
		t.Fatalf("fallback copy out: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "g.txt")); string(b) != "single\n" {
		t.Fatalf("got %q", b)
	}
	if err := CopyToSandbox(ctx, r, filepath.Join(local, "dir"), remote, io.Discard); !errors.Is(err, ErrNoTar) {
		t.Fatalf("a directory without tar: %v", err)
	}
	if err := CopyFromSandbox(ctx, r, remote, out, io.Discard); !errors.Is(err, ErrNoTar) {
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
			err := CopyFromSandbox(context.Background(), &tarRunner{makeTar(t, tc.entries)}, "/workspace/out", dest, &warn)
			if tc.refused && err == nil {
				t.Fatal("a hostile stream was accepted")
			}
			if !tc.refused && (err != nil || warn.Len() == 0) && !strings.Contains(name, "write") {
				t.Fatalf("want a skipped entry with a warning; err=%v warn=%q", err, warn.String())
			}
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

func TestSanitizeStripsTerminalControl(t *testing.T) {
	var b boundedBuffer
	b.Write([]byte("bad \x1b]0;title\x07 name\n"))
	if got := b.String(); strings.ContainsAny(got, "\x1b\x07") {
		t.Fatalf("control characters kept: %q", got)
	}
	b.Write(bytes.Repeat([]byte("x"), 2*maxStderr))
	if len(b.String()) > maxStderr {
		t.Fatal("stderr buffer is not bounded")
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
		if ValidateName(spec.Sandbox) != nil {
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
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		base := t.TempDir()
		dest := filepath.Join(base, "dest")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = CopyFromSandbox(context.Background(), &tarRunner{stream}, "/workspace/out", dest, io.Discard)
		entries, _ := os.ReadDir(base)
		if len(entries) != 1 {
			t.Fatalf("wrote outside the destination: %v", entries)
		}
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
		f.Write(chunk)
		h.Write(chunk)
	}
	f.Close()
	want := h.Sum(nil)
	r := &hostRunner{}
	if err := CopyToSandbox(ctx, r, src, remote, io.Discard); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := CopyFromSandbox(ctx, r, remote+"/big.bin", out, io.Discard); err != nil {
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
