package mcp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// localRoot is the one local directory the copy tools may read from and
// write to (--root). It is opened once, for the server's life, and every
// local open, stat, mkdir, walk and write of the copy tools goes through
// that handle (an os.Root), which refuses to follow any link out of it at
// the moment of use. Tool calls run concurrently, and a hostile sandbox can
// write into the root, so an entry checked by name can be a link to ~/.ssh
// by the time it is used: the checks below (source, destination) only make
// the refusals say where a path leads; they are not what keeps copies in.
type localRoot struct {
	dir string   // absolute, symlinks resolved
	fs  *os.Root // dir, opened once
}

func newLocalRoot(dir string) (*localRoot, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("--root %s: %w", dir, unwrapPathError(err))
	}
	info, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("--root %s: %w", dir, unwrapPathError(err))
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("--root %s is not a directory", dir)
	}
	root, err := os.OpenRoot(real)
	if err != nil {
		return nil, fmt.Errorf("--root %s: %w", dir, unwrapPathError(err))
	}
	return &localRoot{dir: real, fs: root}, nil
}

// rel names a path returned by source or destination relative to the
// root, the way r.fs takes it; a trailing separator is kept.
func (r *localRoot) rel(p string) (string, error) {
	into := strings.HasSuffix(p, string(filepath.Separator))
	rel, err := filepath.Rel(r.dir, p)
	if err != nil || !r.contains(p) {
		return "", &EscapeError{Path: p, Root: r.dir}
	}
	if into {
		rel += string(filepath.Separator)
	}
	return rel, nil
}

// explain turns a refusal of r.fs (a link that, by the time it was used,
// led out of the root) into one that says so.
func (r *localRoot) explain(p string, err error) error {
	if err != nil && strings.Contains(err.Error(), "path escapes from parent") {
		return fmt.Errorf("local path %q leads outside the directory this server may use (%s): a link on the way changed while it was being copied; name a path inside it", p, r.dir)
	}
	return err
}

// EscapeError: a local path that leads out of --root.
type EscapeError struct {
	Path, Root string
	Via        string // what it resolved to, when a symlink took it there
}

func (e *EscapeError) Error() string {
	msg := fmt.Sprintf("local path %q is outside the directory this server may use (%s)", e.Path, e.Root)
	if e.Via != "" {
		msg = fmt.Sprintf("local path %q leads outside the directory this server may use (%s): it resolves to %s", e.Path, e.Root, e.Via)
	}
	return msg + "; name a path inside it (relative paths start there)"
}

// source resolves an existing local path to copy from.
func (r *localRoot) source(p string) (string, error) {
	abs, err := r.join(p)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("local path %q does not exist under %s", p, r.dir)
		}
		return "", fmt.Errorf("local path %q: %w", p, unwrapPathError(err))
	}
	if !r.contains(real) {
		return "", &EscapeError{Path: p, Root: r.dir, Via: real}
	}
	return real, nil
}

// destination resolves a local path to copy to, which need not exist yet:
// its deepest existing ancestor is resolved, the rest appended (they do
// not exist, so they are no symlinks). A trailing separator is kept: it
// means "into this directory".
func (r *localRoot) destination(p string) (string, error) {
	abs, err := r.join(p)
	if err != nil {
		return "", err
	}
	existing, rest := abs, ""
	for {
		real, err := filepath.EvalSymlinks(existing)
		if err == nil {
			out := filepath.Join(real, rest)
			if !r.contains(out) {
				return "", &EscapeError{Path: p, Root: r.dir, Via: out}
			}
			if strings.HasSuffix(p, "/") || strings.HasSuffix(p, string(filepath.Separator)) {
				out += string(filepath.Separator)
			}
			return out, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("local path %q: %w", p, unwrapPathError(err))
		}
		if _, err := os.Lstat(existing); err == nil {
			// It exists but does not resolve: a symlink to nothing, which
			// writing would create wherever it points.
			return "", fmt.Errorf("local path %q leads through %s, a symlink to something that does not exist; remove the link or name another path", p, existing)
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			return "", fmt.Errorf("local path %q: no part of it exists", p)
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
}

// join makes p absolute (relative paths start at the root) and refuses it
// at once if it leaves the root before any symlink is looked at.
func (r *localRoot) join(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("a local path is required (relative paths start at %s)", r.dir)
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("local path %q contains a NUL byte", p)
	}
	abs := p
	if !filepath.IsAbs(p) {
		abs = filepath.Join(r.dir, p)
	}
	abs = filepath.Clean(abs)
	if !r.contains(abs) {
		return "", &EscapeError{Path: p, Root: r.dir}
	}
	return abs, nil
}

func (r *localRoot) contains(p string) bool {
	rel, err := filepath.Rel(r.dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// relative shows a resolved path the way the agent named it: from the root.
func (r *localRoot) relative(p string) string {
	if rel, err := filepath.Rel(r.dir, p); err == nil {
		return rel
	}
	return p
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
