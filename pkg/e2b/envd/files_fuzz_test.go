package envd

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseEntries: whatever a sandbox prints, the parser neither panics
// nor accepts a name a listing cannot have.
func FuzzParseEntries(f *testing.F) {
	f.Add([]byte("B2\x00./a\x00./b\nc\x00" + "81a4 1 1 0 0 5 root root\n" + "a1ff 3 1 0 0 6 u g\n"))
	f.Add([]byte("B1\x00./l\x00a1ff 3 1 0 0 6 u g\nL\x00./l\x00t\nx\x00"))
	f.Add([]byte("B1\x00x\x0041ed 4096 1796630024 0 0 7\n"))
	f.Add([]byte("B3\x00"))
	f.Add([]byte("L\x00nope\x00t\x00"))
	f.Add([]byte("B01\x00./a\x00" + "81a4 1 1 0 0 5 root root\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseEntries(b)
		if err != nil {
			return
		}
		for name, st := range entries {
			if name == "" || len(name) > maxPathBytes || strings.IndexByte(name, 0) >= 0 || st == nil || st.size < 0 {
				t.Fatalf("accepted %q: %+v", name, st)
			}
			if st.target != nil && st.mode.Type() != os.ModeSymlink {
				t.Fatalf("a target on a non-symlink %q", name)
			}
			if rel, ok := relListed(name); ok && (path.Clean(rel) != rel || strings.HasPrefix(rel, "../") || rel == ".." || path.IsAbs(rel)) {
				t.Fatalf("relListed(%q) = %q", name, rel)
			}
			_ = st.entryInfo(path.Join("/root", name))
		}
	})
}

// FuzzListNames: a file named anything comes back from a real sh and
// stat under exactly that name, and no name forges another entry.
func FuzzListNames(f *testing.F) {
	for _, n := range append(hostile, "B1", "x\nB1\x01./y", "L", "a\n81a4 0 0 0 0 0 root root\n", "\xff\xfe", strings.Repeat("n", 255)) {
		f.Add(n)
	}
	fx := startEnvd(f, "")
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" || name == "." || name == ".." || len(name) > 255 || strings.ContainsAny(name, "/\x00") {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Skip(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o644); err != nil && name != "other" {
			t.Fatal(err)
		}
		entries, err := listRaw(WithSandbox(context.Background(), fx.sandbox), dir, "1", maxListEntries)
		if err != nil {
			t.Fatal(err)
		}
		var names [][]byte
		for rel := range entries {
			names = append(names, []byte(rel))
		}
		want := 2
		if name == "other" {
			want = 1
		}
		if len(entries) != want || !containsBytes(names, []byte(name)) {
			t.Fatalf("listed %q for %q", names, name)
		}
	})
}

func containsBytes(list [][]byte, x []byte) bool {
	for _, b := range list {
		if bytes.Equal(b, x) {
			return true
		}
	}
	return false
}

// FuzzParseDownloadHeader: the sandbox's header line gives a size only
// when it is exactly one.
func FuzzParseDownloadHeader(f *testing.F) {
	for _, s := range []string{"K12\n", "K\n", "K-1\n", "K012\n", "K99999999999999999999\n", "X1\n", "K1", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := parseDownloadHeader(b)
		if !ok {
			return
		}
		if n < -1 || (n == -1) != (string(b) == "K\n") || (n >= 0 && string(b) != "K"+strconv.FormatInt(n, 10)+"\n") {
			t.Fatalf("%q gave %d", b, n)
		}
	})
}

// FuzzResolvePath: whatever a client sends as a path is refused or becomes
// one clean absolute path.
func FuzzResolvePath(f *testing.F) {
	for _, s := range []string{"a", "~", "~/x", "/../../etc", "./a/../../b", "~user/x", "a\x00b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		abs, err := resolvePath(p)
		if err != nil {
			return
		}
		if !path.IsAbs(abs) || path.Clean(abs) != abs || strings.IndexByte(abs, 0) >= 0 {
			t.Fatalf("resolvePath(%q) = %q", p, abs)
		}
	})
}
