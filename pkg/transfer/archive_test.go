package transfer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// chrootRunner runs on the host as if root were the sandbox's "/": the
// sandbox paths the archive code names are moved below root.
type chrootRunner struct {
	hostRunner
	root string
}

func (r *chrootRunner) Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error {
	moved := append([]string(nil), command...)
	for i, a := range moved {
		if i > 0 && (a == "/" || strings.HasPrefix(a, sandbox.WorkspaceDir) || strings.HasPrefix(a, "/home/")) {
			moved[i] = r.root + a
		}
	}
	return r.hostRunner.Run(ctx, moved, stdin, stdout, stderr)
}

func sandboxDirs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{sandbox.WorkspaceDir, sandbox.HomeDir} {
		if err := os.MkdirAll(root+d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

var roomy = Limits{MaxBytes: 1 << 20, MaxFiles: 1000}

// What an archive holds is what copy-out would have written: the files,
// links that lead down; never a link that climbs. Restored into another
// sandbox, the same files come back.
func TestArchiveRoundTrip(t *testing.T) {
	for name, newRunner := range runners(t) {
		t.Run(name, func(t *testing.T) {
			from := sandboxDirs(t)
			writeTree(t, from+sandbox.WorkspaceDir, map[string]string{"src/main.go": "package main\n", "notes.txt": "n"})
			writeTree(t, from+sandbox.HomeDir, map[string]string{".config/agent.json": "{}"})
			if err := os.Symlink("src/main.go", from+sandbox.WorkspaceDir+"/down"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../../../etc/passwd", from+sandbox.WorkspaceDir+"/up"); err != nil {
				t.Fatal(err)
			}
			var archive, warn bytes.Buffer
			if err := ArchiveWorkspace(context.Background(), &chrootRunner{*newRunner(), from}, &archive, roomy, &warn); err != nil {
				t.Fatal(err)
			}
			names := archiveNames(t, archive.Bytes())
			for _, want := range []string{ArchiveTop + "/workspace/src/main.go", ArchiveTop + "/workspace/down", ArchiveTop + "/home/.config/agent.json"} {
				if !names[want] {
					t.Errorf("the archive lacks %s: %v", want, names)
				}
			}
			if names[ArchiveTop+"/workspace/up"] || !strings.Contains(warn.String(), "up") {
				t.Errorf("the climbing link was archived (or not warned of): %v, %q", names, warn.String())
			}

			to := sandboxDirs(t)
			writeTree(t, to+sandbox.WorkspaceDir, map[string]string{"kept.txt": "k"})
			if err := RestoreWorkspace(context.Background(), &chrootRunner{*newRunner(), to}, bytes.NewReader(archive.Bytes()), roomy, io.Discard); err != nil {
				t.Fatal(err)
			}
			for file, want := range map[string]string{
				sandbox.WorkspaceDir + "/src/main.go":   "package main\n",
				sandbox.WorkspaceDir + "/down":          "package main\n",
				sandbox.WorkspaceDir + "/kept.txt":      "k",
				sandbox.HomeDir + "/.config/agent.json": "{}",
			} {
				got, err := os.ReadFile(to + file)
				if err != nil || string(got) != want {
					t.Errorf("%s: %q, %v; want %q", file, got, err, want)
				}
			}
		})
	}
}

// An archive from anywhere is checked before any of it enters a sandbox:
// not gzip, names that climb, links that lead out and archives larger
// than the limits are refused, and nothing reaches the sandbox.
func TestRestoreRefusesHostileArchives(t *testing.T) {
	big := strings.Repeat("x", int(roomy.MaxBytes)+1)
	for name, c := range map[string]struct {
		archive []byte
		want    any
	}{
		"not gzip":      {[]byte("plain text"), new(*ArchiveError)},
		"climbing name": {tarGz(t, tarEntry{name: ArchiveTop + "/workspace/../../../escape", body: "x"}), new(*ArchiveError)},
		"absolute name": {tarGz(t, tarEntry{name: "/etc/agentkernel-escape", body: "x"}), new(*ArchiveError)},
		"too big":       {tarGz(t, tarEntry{name: ArchiveTop + "/workspace/big", body: big}), new(*LimitError)},
	} {
		t.Run(name, func(t *testing.T) {
			to := sandboxDirs(t)
			runner := &chrootRunner{hostRunner{}, to}
			err := RestoreWorkspace(context.Background(), runner, bytes.NewReader(c.archive), roomy, io.Discard)
			switch want := c.want.(type) {
			case **ArchiveError:
				if !errors.As(err, want) {
					t.Fatalf("restore: %v, want an ArchiveError", err)
				}
			case **LimitError:
				if !errors.As(err, want) {
					t.Fatalf("restore: %v, want a LimitError", err)
				}
			}
			entries, _ := os.ReadDir(to + sandbox.WorkspaceDir)
			if len(entries) != 0 {
				t.Fatalf("a refused archive reached the sandbox: %v", entries)
			}
		})
	}
}

// A link in an archive that leads out is skipped, as copy-out skips it:
// the rest of the archive is restored, and nothing is written through it.
func TestRestoreSkipsLinksOut(t *testing.T) {
	to := sandboxDirs(t)
	archive := tarGz(t, tarEntry{name: ArchiveTop + "/workspace/l", link: "/etc"}, tarEntry{name: ArchiveTop + "/workspace/l/x", body: "x"},
		tarEntry{name: ArchiveTop + "/workspace/ok", body: "ok"})
	var warn bytes.Buffer
	err := RestoreWorkspace(context.Background(), &chrootRunner{hostRunner{}, to}, bytes.NewReader(archive), roomy, &warn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(to + sandbox.WorkspaceDir + "/l"); err == nil {
		if fi, _ := os.Lstat(to + sandbox.WorkspaceDir + "/l"); fi.Mode()&os.ModeSymlink != 0 {
			t.Fatal("the link out was restored")
		}
	}
	if got, _ := os.ReadFile(to + sandbox.WorkspaceDir + "/ok"); string(got) != "ok" || !strings.Contains(warn.String(), "l") {
		t.Fatalf("the rest of the archive: %q; warning %q", got, warn.String())
	}
}

// CopyWorkspace forks: the second sandbox gets the first one's files.
func TestCopyWorkspace(t *testing.T) {
	from, to := sandboxDirs(t), sandboxDirs(t)
	writeTree(t, from+sandbox.WorkspaceDir, map[string]string{"a/b.txt": "fork me"})
	if err := CopyWorkspace(context.Background(), &chrootRunner{hostRunner{}, from}, &chrootRunner{hostRunner{}, to}, roomy, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(to + sandbox.WorkspaceDir + "/a/b.txt"); err != nil || string(got) != "fork me" {
		t.Fatalf("forked file: %q, %v", got, err)
	}
}

type tarEntry struct{ name, body, link string }

func tarGz(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range append([]tarEntry{{name: ArchiveTop + "/"}, {name: ArchiveTop + "/workspace/"}}, entries...) {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		switch {
		case strings.HasSuffix(e.name, "/"):
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		case e.link != "":
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.link
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func archiveNames(t *testing.T, archive []byte) map[string]bool {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	names := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[strings.TrimSuffix(hdr.Name, "/")] = true
	}
}

// FuzzRestoreWorkspace: whatever the archive, nothing is written outside
// the sandbox's /workspace and $HOME.
func FuzzRestoreWorkspace(f *testing.F) {
	f.Add(tarGz(f, tarEntry{name: ArchiveTop + "/workspace/a", body: "a"}))
	f.Fuzz(func(t *testing.T, archive []byte) {
		to := sandboxDirs(t)
		outside := filepath.Join(to, "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = RestoreWorkspace(context.Background(), &chrootRunner{hostRunner{}, to}, bytes.NewReader(archive), Limits{MaxBytes: 1 << 16, MaxFiles: 100}, io.Discard)
		entries, _ := os.ReadDir(outside)
		top, _ := os.ReadDir(to)
		if len(entries) != 0 || len(top) != 3 {
			t.Fatalf("the restore wrote outside the sandbox's directories: %v %v", entries, top)
		}
	})
}
