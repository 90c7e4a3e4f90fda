package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCpFilesAndTrees(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "demo")
	local := t.TempDir()
	files := map[string]string{
		"repo/README.md":          "# hi\n",
		"repo/src/main.go":        "package main\n",
		"repo/src/with space.txt": "spaces survive\n",
		"repo/-looks-like-a-flag": "dash\n",
		"repo/deep/a/b/c/d.txt":   "deep\n",
	}
	writeFiles(t, local, files)
	dest := workPath(ns, "in") + "/"

	mustPlugin(t, "", "cp", filepath.Join(local, "repo"), "demo:"+dest, "-n", ns)
	r := mustPlugin(t, "", "exec", "demo", "-n", ns, "--", "cat", dest+"repo/src/with space.txt")
	if r.stdout != "spaces survive\n" {
		t.Fatalf("file in the sandbox: %q", r.stdout)
	}
	out := t.TempDir()
	mustPlugin(t, "", "cp", "demo:"+dest+"repo", filepath.Join(out, "back"), "-n", ns)
	for name, body := range files {
		got, err := os.ReadFile(filepath.Join(out, "back", strings.TrimPrefix(name, "repo/")))
		if err != nil || string(got) != body {
			t.Errorf("%s after a round trip: %q %v", name, got, err)
		}
	}
	// A single file, to a new name, with NAMESPACE/NAME:PATH.
	mustPlugin(t, "", "cp", filepath.Join(local, "repo/README.md"), ns+"/demo:"+workPath(ns, "renamed.md"))
	mustPlugin(t, "", "cp", ns+"/demo:"+workPath(ns, "renamed.md"), filepath.Join(out, "readme"))
	if got, _ := os.ReadFile(filepath.Join(out, "readme")); string(got) != "# hi\n" {
		t.Fatalf("single file: %q", got)
	}
}

func TestCpLargeFileChecksums(t *testing.T) {
	requireCluster(t)
	copyLargeFile(t, 100<<20, "1Gi")
}

// One GiB through the API server both ways, without truncation. Only on the
// simulated node, whose /workspace is memory: a real node would need the
// disk, and its ephemeral-storage limit, for it.
func TestCpOneGiB(t *testing.T) {
	requireSimulated(t)
	copyLargeFile(t, 1<<30, "3Gi")
}

func copyLargeFile(t *testing.T, size int, storage string) {
	t.Helper()
	began := time.Now()
	t.Cleanup(func() {
		// A failure here has been seen once in CI, beside the real-node
		// tier, with nothing printed: say what the machine had left.
		if t.Failed() {
			t.Logf("after %s; %s", time.Since(began).Round(time.Second), freeSpace(os.TempDir()))
		}
	})
	ns := newNamespace(t)
	createSandbox(t, ns, "big", "--ephemeral-storage", storage)
	local := t.TempDir()
	src := filepath.Join(local, "blob.bin")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	block := make([]byte, 1<<20)
	for i := 0; i < size/len(block); i++ {
		for j := range block {
			block[j] = byte(i*31 + j*7)
		}
		if _, err := f.Write(block); err != nil {
			t.Fatal(err)
		}
		h.Write(block)
	}
	f.Close()
	want := hex.EncodeToString(h.Sum(nil))

	mustPlugin(t, "", "cp", src, "big:"+workPath(ns, "blob.bin"), "-n", ns)
	r := mustPlugin(t, "", "exec", "big", "-n", ns, "--", "sha256sum", workPath(ns, "blob.bin"))
	if got := strings.Fields(r.stdout); len(got) == 0 || got[0] != want {
		t.Fatalf("checksum in the sandbox %q, want %s", r.stdout, want)
	}
	out := filepath.Join(t.TempDir(), "blob.out")
	mustPlugin(t, "", "cp", "big:"+workPath(ns, "blob.bin"), out, "-n", ns)
	g, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h.Reset()
	n, _ := io.Copy(h, g)
	if n != int64(size) || hex.EncodeToString(h.Sum(nil)) != want {
		t.Fatalf("copied out %d bytes with a different checksum", n)
	}
}

func TestCpRefusesLinksOutOfTheTree(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "demo")
	dir := workPath(ns, "evil")
	mustPlugin(t, "", "exec", "demo", "-n", ns, "--", "sh", "-c",
		`mkdir -p "$0" && cd "$0" && echo ok > good.txt && ln -s /etc/passwd leak && ln -s good.txt fine`, dir)
	out := t.TempDir()
	r := mustPlugin(t, "", "cp", "demo:"+dir, filepath.Join(out, "evil"), "-n", ns)
	if !strings.Contains(r.stderr, "skipping symlink") {
		t.Fatalf("no warning about the escaping link:\n%s", r)
	}
	if _, err := os.Lstat(filepath.Join(out, "evil", "leak")); !os.IsNotExist(err) {
		t.Fatalf("a link out of the tree was created: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(out, "evil", "fine")); err != nil || target != "good.txt" {
		t.Fatalf("a link inside the tree was not kept: %q %v", target, err)
	}
}

func TestCpWithoutTarInTheImage(t *testing.T) {
	requireSimulated(t) // the simulated node gives this one pod a PATH without tar
	ns := newNamespace(t)
	name := strings.TrimPrefix(localcluster.NoTarPodName, "agentkernel-")
	createSandbox(t, ns, name)
	local := t.TempDir()
	writeFiles(t, local, map[string]string{"note.txt": "no tar needed\n", "dir/x": "x"})

	r := mustPlugin(t, "", "cp", filepath.Join(local, "note.txt"), name+":"+workPath(ns, "note.txt"), "-n", ns)
	if !strings.Contains(r.stderr, "no tar") {
		t.Fatalf("no warning about the fallback:\n%s", r)
	}
	out := filepath.Join(t.TempDir(), "note.txt")
	mustPlugin(t, "", "cp", name+":"+workPath(ns, "note.txt"), out, "-n", ns)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, []byte("no tar needed\n")) {
		t.Fatalf("fallback copy: %q", got)
	}
	r = plugin(t, "", "cp", filepath.Join(local, "dir"), name+":"+workPath(ns, "dir"), "-n", ns)
	wantError(t, r, "has no tar")
}

// freeSpace says how much room is left on dir's file system.
func freeSpace(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Sprintf("free space of %s unknown: %v", dir, err)
	}
	return fmt.Sprintf("%d MiB free in %s", st.Bavail*uint64(st.Bsize)>>20, dir)
}
