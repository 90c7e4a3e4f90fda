package transfer

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// A Windows client's paths: a drive letter is local however it is
// written, though a one-letter sandbox name would fit; on Linux and macOS
// "c:/x" is sandbox c (an upper-case letter is never a sandbox name).
func TestParseFileSpecOnWindows(t *testing.T) {
	cases := []struct {
		in   string
		goos string
		want FileSpec
	}{
		{`C:\repo`, "windows", FileSpec{Path: `C:\repo`}},
		{`c:\repo`, "windows", FileSpec{Path: `c:\repo`}},
		{`C:/x`, "windows", FileSpec{Path: `C:/x`}},
		{`c:/x`, "windows", FileSpec{Path: `c:/x`}},
		{`d:notes.txt`, "windows", FileSpec{Path: `d:notes.txt`}},
		{`C:\Users\Zoë\My Repo\fichier é.txt`, "windows", FileSpec{Path: `C:\Users\Zoë\My Repo\fichier é.txt`}},
		{`\\server\share\x:y`, "windows", FileSpec{Path: `\\server\share\x:y`}},
		{`.\demo:x`, "windows", FileSpec{Path: `.\demo:x`}},
		{`repo\sub:x`, "windows", FileSpec{Path: `repo\sub:x`}}, // not a sandbox name
		{`demo:/workspace/My Repo/é.txt`, "windows", FileSpec{Sandbox: "demo", Path: "/workspace/My Repo/é.txt"}},
		{`ns/c:/x`, "windows", FileSpec{Namespace: "ns", Sandbox: "c", Path: "/x"}},
		{`C:/x`, "linux", FileSpec{Path: `C:/x`}},
		{`C:\repo`, "darwin", FileSpec{Path: `C:\repo`}},
		{`c:/x`, "linux", FileSpec{Sandbox: "c", Path: "/x"}},
		{`c:/x`, "darwin", FileSpec{Sandbox: "c", Path: "/x"}},
	}
	for _, tc := range cases {
		got, err := parseFileSpec(tc.in, tc.goos)
		if err != nil || got != tc.want {
			t.Errorf("on %s, %q = %+v, %v; want %+v", tc.goos, tc.in, got, err, tc.want)
		}
	}
}

// NTFS has no Unix modes: what Go reports on Windows (0666 files, 0444
// read-only, 0777 directories) becomes what git would check out.
func TestPortableMode(t *testing.T) {
	cases := []struct {
		mode int64
		dir  bool
		goos string
		want int64
	}{
		{0o666, false, "windows", 0o644},
		{0o444, false, "windows", 0o444},
		{0o777, true, "windows", 0o755},
		{0o755, false, "linux", 0o755},
		{0o666, false, "darwin", 0o666},
		{0o700, true, "linux", 0o700},
	}
	for _, tc := range cases {
		if got := portableMode(tc.mode, tc.dir, tc.goos); got != tc.want {
			t.Errorf("portableMode(%o, dir %v, %s) = %o, want %o", tc.mode, tc.dir, tc.goos, got, tc.want)
		}
	}
}

// The archive a Windows client sends, as WriteTar writes it there
// (forward slashes, the portable modes, CRLF line endings left as they
// are, names with spaces and beyond ASCII), unpacks in the sandbox byte
// for byte, with those modes; and comes back out the same.
func TestCopyFromAWindowsClient(t *testing.T) {
	files := []struct {
		name, body string
		mode       int64
	}{
		{"My Repo/README.md", "line one\r\nline two\r\n", portableMode(0o666, false, "windows")},
		{"My Repo/docs/fichier é.txt", "accents: é à ç\r\n", portableMode(0o666, false, "windows")},
		{"My Repo/日本語/メモ.txt", "こんにちは\r\n", portableMode(0o444, false, "windows")},
		{"My Repo/script.sh", "#!/bin/sh\r\necho hi\r\n", portableMode(0o666, false, "windows")},
	}
	for name, newRunner := range runners(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			remote := t.TempDir()
			cmd, _, _ := extractCommand(remote+"/", "My Repo")
			runErr, err := sendTar(ctx, newRunner(), cmd, io.Discard, func(w io.Writer) error {
				tw := tar.NewWriter(w)
				for _, d := range []string{"My Repo", "My Repo/docs", "My Repo/日本語"} {
					if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: portableMode(0o777, true, "windows")}); err != nil {
						return err
					}
				}
				for _, f := range files {
					if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.body))}); err != nil {
						return err
					}
					if _, err := io.WriteString(tw, f.body); err != nil {
						return err
					}
				}
				return tw.Close()
			})
			if err != nil || runErr != nil {
				t.Fatalf("copy in: %v, %v", err, runErr)
			}
			for _, f := range files {
				p := filepath.Join(remote, f.name)
				got, err := os.ReadFile(p)
				if err != nil || string(got) != f.body {
					t.Errorf("%s: %q, %v; want %q byte for byte", f.name, got, err, f.body)
				}
				if info, err := os.Stat(p); err != nil || int64(info.Mode().Perm()) != f.mode {
					t.Errorf("%s: mode %v, %v; want %o", f.name, info.Mode().Perm(), err, f.mode)
				}
			}
			if info, err := os.Stat(filepath.Join(remote, "My Repo/日本語")); err != nil || info.Mode().Perm() != 0o755 {
				t.Errorf("directory mode %v, %v; want 755", info, err)
			}
			back := t.TempDir()
			if err := CopyFromSandbox(ctx, newRunner(), remote+"/My Repo", back, Limits{}, io.Discard); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if got, err := os.ReadFile(filepath.Join(back, f.name)); err != nil || string(got) != f.body {
					t.Errorf("back out %s: %q, %v", f.name, got, err)
				}
			}
		})
	}
}
