package envd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// hostile are names a sandbox's files may have.
var hostile = []string{"plain.txt", "new\nline", `quo"te's`, "sp ace", "-dash", "back\\slash", "tab\there", "ünï", "B1"}

func writeFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(n), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func connectCode(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return 0
}

func TestFilesystemStat(t *testing.T) {
	for shell, tools := range shells(t) {
		t.Run(shell, func(t *testing.T) {
			f := startEnvd(t, tools)
			ctx := context.Background()
			writeFiles(t, f.dir, hostile...)
			for _, n := range hostile {
				res, err := f.fs.Stat(ctx, connect.NewRequest(&filesystempb.StatRequest{Path: f.path(n)}))
				if err != nil {
					t.Fatalf("stat %q: %v", n, err)
				}
				e := res.Msg.GetEntry()
				if e.GetName() != n || e.GetPath() != f.path(n) || e.GetType() != filesystempb.FileType_FILE_TYPE_FILE || e.GetSize() != int64(len(n)) ||
					e.GetMode() != 0o640 || e.GetPermissions() != "-rw-r-----" || e.GetOwner() == "" || e.GetModifiedTime().AsTime().Before(time.Now().Add(-time.Hour)) {
					t.Errorf("stat %q = %v", n, e)
				}
			}
			target := "../t\narget"
			if err := os.Symlink(target, f.path("link")); err != nil {
				t.Fatal(err)
			}
			res, err := f.fs.Stat(ctx, connect.NewRequest(&filesystempb.StatRequest{Path: f.path("link")}))
			if err != nil || res.Msg.GetEntry().GetType() != filesystempb.FileType_FILE_TYPE_SYMLINK || res.Msg.GetEntry().GetSymlinkTarget() != target {
				t.Errorf("stat of a symlink = %v, %v", res, err)
			}
			res, err = f.fs.Stat(ctx, connect.NewRequest(&filesystempb.StatRequest{Path: f.dir}))
			if err != nil || res.Msg.GetEntry().GetType() != filesystempb.FileType_FILE_TYPE_DIRECTORY || !strings.HasPrefix(res.Msg.GetEntry().GetPermissions(), "d") {
				t.Errorf("stat of a directory = %v, %v", res, err)
			}
			_, err = f.fs.Stat(ctx, connect.NewRequest(&filesystempb.StatRequest{Path: f.path("missing")}))
			if connectCode(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "does not exist") {
				t.Errorf("stat of a missing path: %v, want NotFound", err)
			}
			_, err = f.fs.Stat(ctx, connect.NewRequest(&filesystempb.StatRequest{}))
			if connectCode(err) != connect.CodeInvalidArgument {
				t.Errorf("stat of no path: %v, want InvalidArgument", err)
			}
		})
	}
}

func TestFilesystemListDir(t *testing.T) {
	for shell, tools := range shells(t) {
		t.Run(shell, func(t *testing.T) {
			f := startEnvd(t, tools)
			ctx := context.Background()
			writeFiles(t, f.dir, hostile...)
			writeFiles(t, f.dir, "sub/deeper/x", "sub/y")
			list := func(p string, depth uint32) ([]string, error) {
				res, err := f.fs.ListDir(ctx, connect.NewRequest(&filesystempb.ListDirRequest{Path: p, Depth: depth}))
				if err != nil {
					return nil, err
				}
				var names []string
				for _, e := range res.Msg.GetEntries() {
					rel, _ := filepath.Rel(f.dir, e.GetPath())
					names = append(names, rel)
					if e.GetName() != filepath.Base(e.GetPath()) {
						t.Errorf("entry %q is named %q", e.GetPath(), e.GetName())
					}
				}
				return names, nil
			}
			got, err := list(f.dir, 1)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]string{"sub"}, hostile...)
			if strings.Join(sortedCopy(got), "|") != strings.Join(sortedCopy(want), "|") {
				t.Errorf("depth 1: %q, want %q", got, want)
			}
			got, err = list(f.dir, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(hostile)+3 || !contains(got, "sub/deeper") || contains(got, "sub/deeper/x") {
				t.Errorf("depth 2: %q", got)
			}
			if got, err := list(f.dir, 1<<32-1); err != nil || len(got) != len(hostile)+4 {
				t.Errorf("the deepest depth: %q, %v", got, err)
			}
			if got, err := list(f.dir, 0); err != nil || len(got) != len(hostile)+1 {
				t.Errorf("depth 0 lists as 1: %q, %v", got, err)
			}
			if _, err := list(f.path("missing"), 1); connectCode(err) != connect.CodeNotFound {
				t.Errorf("listing a missing path: %v, want NotFound", err)
			}
			if _, err := list(f.path("plain.txt"), 1); connectCode(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "not a directory") {
				t.Errorf("listing a file: %v, want InvalidArgument", err)
			}
			// A name that is not UTF-8 cannot travel as a protobuf string:
			// it comes back with U+FFFD, and the rest of the listing with it.
			writeFiles(t, f.dir, "bad\xff\xfename")
			got, err = list(f.dir, 1)
			if err != nil || !contains(got, "bad\uFFFDname") || len(got) != len(hostile)+2 {
				t.Errorf("a listing with a name that is not UTF-8: %q, %v", got, err)
			}
			if err := os.Remove(f.path("bad\xff\xfename")); err != nil {
				t.Fatal(err)
			}
			empty := f.path("empty")
			if err := os.Mkdir(empty, 0o755); err != nil {
				t.Fatal(err)
			}
			if got, err := list(empty, 1); err != nil || len(got) != 0 {
				t.Errorf("listing an empty directory: %q, %v", got, err)
			}
		})
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestFilesystemMakeDirMoveRemove(t *testing.T) {
	for shell, tools := range shells(t) {
		t.Run(shell, func(t *testing.T) {
			f := startEnvd(t, tools)
			ctx := context.Background()
			nested := f.path("a/b\nc/d")
			res, err := f.fs.MakeDir(ctx, connect.NewRequest(&filesystempb.MakeDirRequest{Path: nested}))
			if err != nil || res.Msg.GetEntry().GetType() != filesystempb.FileType_FILE_TYPE_DIRECTORY || res.Msg.GetEntry().GetPath() != nested {
				t.Fatalf("make dir = %v, %v", res, err)
			}
			if st, err := os.Stat(nested); err != nil || !st.IsDir() {
				t.Fatalf("the directory was not made: %v", err)
			}
			_, err = f.fs.MakeDir(ctx, connect.NewRequest(&filesystempb.MakeDirRequest{Path: nested}))
			if connectCode(err) != connect.CodeAlreadyExists {
				t.Errorf("make an existing dir: %v, want AlreadyExists (the SDK's false)", err)
			}
			writeFiles(t, f.dir, "file")
			_, err = f.fs.MakeDir(ctx, connect.NewRequest(&filesystempb.MakeDirRequest{Path: f.path("file")}))
			if connectCode(err) != connect.CodeInvalidArgument {
				t.Errorf("make dir over a file: %v, want InvalidArgument", err)
			}

			// Move a file to a new directory, under a hostile name.
			dst := f.path("moved/q\"'\n")
			mv, err := f.fs.Move(ctx, connect.NewRequest(&filesystempb.MoveRequest{Source: f.path("file"), Destination: dst}))
			if err != nil || mv.Msg.GetEntry().GetPath() != dst || mv.Msg.GetEntry().GetSize() != 4 {
				t.Fatalf("move = %v, %v", mv, err)
			}
			if _, err := os.Stat(f.path("file")); !os.IsNotExist(err) {
				t.Errorf("the source is still there: %v", err)
			}
			if b, err := os.ReadFile(dst); err != nil || string(b) != "file" {
				t.Errorf("moved file = %q, %v", b, err)
			}
			// A directory replaces an empty one, as rename(2) does, and not
			// a full one; a file does not replace a directory.
			if _, err := f.fs.Move(ctx, connect.NewRequest(&filesystempb.MoveRequest{Source: f.path("a"), Destination: f.path("empty")})); err != nil {
				// (empty does not exist yet: a plain rename)
				t.Fatalf("move a directory: %v", err)
			}
			if err := os.Mkdir(f.path("target"), 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := f.fs.Move(ctx, connect.NewRequest(&filesystempb.MoveRequest{Source: f.path("empty"), Destination: f.path("target")})); err != nil {
				t.Fatalf("move a directory onto an empty one: %v", err)
			}
			if _, err := os.Stat(f.path("target/b\nc/d")); err != nil {
				t.Errorf("the directory did not replace the empty one: %v", err)
			}
			if err := os.Mkdir(f.path("other"), 0o755); err != nil {
				t.Fatal(err)
			}
			_, err = f.fs.Move(ctx, connect.NewRequest(&filesystempb.MoveRequest{Source: f.path("other"), Destination: f.path("target")}))
			if connectCode(err) != connect.CodeAlreadyExists {
				t.Errorf("move onto a full directory: %v, want AlreadyExists", err)
			}
			_, err = f.fs.Move(ctx, connect.NewRequest(&filesystempb.MoveRequest{Source: dst, Destination: f.path("other")}))
			if connectCode(err) != connect.CodeInvalidArgument {
				t.Errorf("move a file onto a directory: %v, want InvalidArgument", err)
			}
			_, err = f.fs.Move(ctx, connect.NewRequest(&filesystempb.MoveRequest{Source: f.path("missing"), Destination: f.path("x")}))
			if connectCode(err) != connect.CodeNotFound {
				t.Errorf("move a missing path: %v, want NotFound", err)
			}
			_, err = f.fs.Move(ctx, connect.NewRequest(&filesystempb.MoveRequest{Source: f.path("target"), Destination: f.path("target/in")}))
			if connectCode(err) != connect.CodeInvalidArgument {
				t.Errorf("move into itself: %v, want InvalidArgument", err)
			}
			if mv, err := f.fs.Move(ctx, connect.NewRequest(&filesystempb.MoveRequest{Source: f.path("target"), Destination: f.path("target/")})); err != nil || mv.Msg.GetEntry().GetType() != filesystempb.FileType_FILE_TYPE_DIRECTORY {
				t.Errorf("move onto itself = %v, %v", mv, err)
			}
			if _, err := os.Stat(f.path("target/b\nc/d")); err != nil {
				t.Errorf("a move onto itself lost the directory: %v", err)
			}

			// Remove a tree; a missing path is removed too (os.RemoveAll).
			if _, err := f.fs.Remove(ctx, connect.NewRequest(&filesystempb.RemoveRequest{Path: f.path("target")})); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(f.path("target")); !os.IsNotExist(err) {
				t.Errorf("removed tree still there: %v", err)
			}
			if _, err := f.fs.Remove(ctx, connect.NewRequest(&filesystempb.RemoveRequest{Path: f.path("target")})); err != nil {
				t.Errorf("remove a missing path: %v", err)
			}
			if _, err := f.fs.Remove(ctx, connect.NewRequest(&filesystempb.RemoveRequest{Path: "/"})); connectCode(err) != connect.CodeInvalidArgument {
				t.Errorf("remove /: %v, want InvalidArgument", err)
			}
		})
	}
}

func TestFilesystemSandboxGone(t *testing.T) {
	f := startEnvd(t, "")
	f.exec.path = f.dir // no sh there: every exec fails to start
	_, err := f.fs.Stat(context.Background(), connect.NewRequest(&filesystempb.StatRequest{Path: "/tmp"}))
	if connectCode(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("stat with a sandbox that does not answer: %v, want Unavailable", err)
	}
}

func TestResolvePath(t *testing.T) {
	for in, want := range map[string]string{
		"file.txt":        sandbox.HomeDir + "/file.txt",
		"a/../b":          sandbox.HomeDir + "/b",
		"~":               sandbox.HomeDir,
		"~/x/":            sandbox.HomeDir + "/x",
		"/etc//passwd":    "/etc/passwd",
		"/../..":          "/",
		"~user":           sandbox.HomeDir + "/~user",
		"./new\nline":     sandbox.HomeDir + "/new\nline",
		"/tmp/trailing/.": "/tmp/trailing",
	} {
		if got, err := resolvePath(in); err != nil || got != want {
			t.Errorf("resolvePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a\x00b", "/" + strings.Repeat("x", maxPathBytes)} {
		if got, err := resolvePath(bad); err == nil {
			t.Errorf("resolvePath(%q) = %q, want an error", bad, got)
		}
	}
}
