package transfer

import (
	"fmt"
	"path"
	"runtime"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// FileSpec is one side of a copy: a local path, or a path in a sandbox.
type FileSpec struct {
	Namespace string // "" = the current namespace
	Sandbox   string // "" = local
	Path      string
}

// Remote reports whether the spec names a path in a sandbox.
func (f FileSpec) Remote() bool { return f.Sandbox != "" }

// ParseFileSpec reads "NAME:PATH", "NAMESPACE/NAME:PATH" or a local path.
// A relative remote path is taken from the sandbox's /workspace. Anything
// that does not start with a valid sandbox name and ':' is a local path, so
// "./a:b" and "/x:y" stay local; on Windows so does "C:\dir".
func ParseFileSpec(arg string) (FileSpec, error) {
	return parseFileSpec(arg, runtime.GOOS)
}

// parseFileSpec is ParseFileSpec as a client on goos reads it: on Windows
// a drive ("c:", "c:/x", "c:\x", "c:x") and a UNC or backslashed path are
// local, though a one-letter sandbox name would fit them (`c/d:x` too is
// a sandbox: no drive letter has a slash before its colon).
func parseFileSpec(arg, goos string) (FileSpec, error) {
	if arg == "" {
		return FileSpec{}, fmt.Errorf("empty path: give a local path or NAME:/path")
	}
	before, after, found := strings.Cut(arg, ":")
	if !found || before == "" || strings.HasPrefix(arg, ".") || strings.HasPrefix(arg, "/") ||
		(goos == "windows" && (len(before) == 1 || strings.HasPrefix(arg, `\`))) {
		return FileSpec{Path: arg}, nil
	}
	ns, name, hasNS := strings.Cut(before, "/")
	if !hasNS {
		ns, name = "", before
	}
	if sandbox.ValidateName(name) != nil || (hasNS && sandbox.ValidateName(ns) != nil) {
		// Not a sandbox reference at all: a local file with a ':' in its name.
		return FileSpec{Path: arg}, nil
	}
	p, err := CleanRemotePath(after)
	if err != nil {
		return FileSpec{}, fmt.Errorf("%q: %v", arg, err)
	}
	return FileSpec{Namespace: ns, Sandbox: name, Path: p}, nil
}

// CleanRemotePath makes a sandbox path absolute (relative to /workspace) and
// clean, keeping a trailing '/' that means "into this directory".
func CleanRemotePath(p string) (string, error) {
	if p == "" {
		return sandbox.WorkspaceDir + "/", nil
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path contains a NUL byte")
	}
	into := strings.HasSuffix(p, "/") || p == "." || strings.HasSuffix(p, "/.")
	if !path.IsAbs(p) {
		p = path.Join(sandbox.WorkspaceDir, p)
	}
	p = path.Clean(p)
	if into && p != "/" {
		p += "/"
	}
	return p, nil
}
