package mcp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rootTree makes a --root directory with every kind of way out: symlinks
// to outside, to inside, chains of them, and one to nothing. It returns the
// root and a directory outside it holding a file that must never be read
// or written.
func rootTree(t testing.TB) (root, outside string) {
	t.Helper()
	root, outside = t.TempDir(), t.TempDir()
	for name, content := range map[string]string{"repo/main.go": "package main\n", "repo/docs/README": "hi\n"} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"escape":        outside,
		"escape-file":   filepath.Join(outside, "secret"),
		"relative-out":  "../" + filepath.Base(outside),
		"repo/up":       "../..",
		"chain":         "escape",
		"inside":        "repo",
		"dangling":      filepath.Join(outside, "not-yet"),
		"dangling-rel":  "nothing-here",
		"repo/etc-link": "/etc",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

func TestLocalRootRefusesEveryWayOut(t *testing.T) {
	root, outside := rootTree(t)
	r, err := newLocalRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(root)
	for _, p := range []string{"../x", "/etc/passwd", outside + "/secret", "escape", "escape/secret", "escape-file", "relative-out/secret", "repo/up", "repo/up/x", "chain/secret", "repo/etc-link/passwd", "repo/../../x", ""} {
		if got, err := r.source(p); err == nil {
			t.Errorf("source(%q) = %q, want a refusal", p, got)
		}
	}
	for _, p := range []string{"../x", "/tmp/x", outside + "/new", "escape", "escape/new", "escape-file", "relative-out/new", "repo/up/new", "chain/new/deeper/", "repo/etc-link/x", "dangling", "dangling/x", "dangling-rel", "repo/main.go/x", ""} {
		if got, err := r.destination(p); err == nil {
			t.Errorf("destination(%q) = %q, want a refusal", p, got)
		}
	}
	var escape *EscapeError
	if _, err := r.source("escape"); !errors.As(err, &escape) || !strings.Contains(err.Error(), "it resolves to "+outside) {
		t.Errorf("the error does not say where the link leads: %v", err)
	}
	for p, want := range map[string]string{
		"repo":           real + "/repo",
		"inside/main.go": real + "/repo/main.go",
		real + "/repo":   real + "/repo",
		".":              real,
	} {
		if got, err := r.source(p); err != nil || got != want {
			t.Errorf("source(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	for p, want := range map[string]string{
		"out":              real + "/out",
		"out/deep/":        real + "/out/deep/",
		"inside/new.txt":   real + "/repo/new.txt",
		"repo/docs":        real + "/repo/docs",
		"./a/../b":         real + "/b",
		real + "/x/y/z.go": real + "/x/y/z.go",
	} {
		if got, err := r.destination(p); err != nil || got != want {
			t.Errorf("destination(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
}

func FuzzLocalRoot(f *testing.F) {
	for _, p := range []string{"repo", "../x", "escape/secret", "inside/../..", "chain/a/", "/etc", "dangling/x", "repo/up/up"} {
		f.Add(p)
	}
	root, _ := rootTree(f)
	r, err := newLocalRoot(root)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p string) {
		for _, resolve := range []func(string) (string, error){r.source, r.destination} {
			got, err := resolve(p)
			if err != nil {
				continue
			}
			if !r.contains(strings.TrimSuffix(got, "/")) {
				t.Fatalf("%q resolved to %q, outside %s", p, got, r.dir)
			}
			// What exists of it resolves inside too.
			if real, err := filepath.EvalSymlinks(got); err == nil && !r.contains(real) {
				t.Fatalf("%q resolved to %q, which leads to %q", p, got, real)
			}
		}
	})
}

func TestCopyInAndOut(t *testing.T) {
	root, outside := rootTree(t)
	f := start(t, fakeCluster(), &hostExecutor{}, func(o *Options) { o.Root = root })
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "cp"})
	box := t.TempDir() // stands in for the sandbox's filesystem

	in := ok[CopyOutput](f, toolCopyIn, map[string]any{"sandbox": "cp", "local_path": "repo", "sandbox_path": box + "/"})
	if in.From != "repo" || in.To != "cp:"+box+"/" {
		t.Errorf("copy_in: %+v", in)
	}
	if b, err := os.ReadFile(filepath.Join(box, "repo/docs/README")); err != nil || string(b) != "hi\n" {
		t.Fatalf("copied in: %q, %v", b, err)
	}
	// Links inside the tree travel as links, never as what they point at.
	if target, err := os.Readlink(filepath.Join(box, "repo/etc-link")); err != nil || target != "/etc" {
		t.Errorf("repo/etc-link: %q, %v", target, err)
	}
	for _, p := range []string{"escape", "escape/secret", "escape-file", "chain/secret", "../" + filepath.Base(outside), outside + "/secret"} {
		f.fails(toolCopyIn, map[string]any{"sandbox": "cp", "local_path": p, "sandbox_path": box + "/"}, "outside the directory this server may use")
	}
	f.fails(toolCopyIn, map[string]any{"sandbox": "cp", "local_path": "missing"}, `local path "missing" does not exist`)

	// Out of the sandbox: a tree with a link that leads out of it.
	if err := os.MkdirAll(filepath.Join(box, "result"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(box, "result/report.txt"), []byte("done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside+"/secret", filepath.Join(box, "result/evil")); err != nil {
		t.Fatal(err)
	}
	out := ok[CopyOutput](f, toolCopyOut, map[string]any{"sandbox": "cp", "sandbox_path": box + "/result", "local_path": "out/"})
	if out.To != "out" || len(out.Warnings) == 0 || !strings.Contains(strings.Join(out.Warnings, "\n"), "evil") {
		t.Errorf("copy_out: %+v", out)
	}
	if b, err := os.ReadFile(filepath.Join(root, "out/result/report.txt")); err != nil || string(b) != "done\n" {
		t.Fatalf("copied out: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "out/result/evil")); err == nil {
		t.Error("a link out of the tree was copied out")
	}
	for _, p := range []string{"escape/new", "escape", "chain/x/", "dangling", "repo/up/new", "/tmp/new", "../new"} {
		f.fails(toolCopyOut, map[string]any{"sandbox": "cp", "sandbox_path": box + "/result", "local_path": p}, "local path")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("something was written outside the root: %v", entries)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "outside" {
		t.Error("the file outside the root changed")
	}
	f.fails(toolCopyOut, map[string]any{"sandbox": "cp", "sandbox_path": box + "/missing", "local_path": "x"}, "no such file in the sandbox")
}
