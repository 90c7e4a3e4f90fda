package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"unicode"
)

// Runner runs a command in a sandbox, streaming stdin, stdout and stderr.
// A command that ran and exited non-zero comes back as an error with an
// ExitStatus() int method (client-go's exec.CodeExitError has one).
type Runner interface {
	Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// ExitCode returns the exit status carried by err, if any.
func ExitCode(err error) (int, bool) {
	var exit interface{ ExitStatus() int }
	if errors.As(err, &exit) {
		return exit.ExitStatus(), true
	}
	return 0, false
}

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
	if arg == "" {
		return FileSpec{}, fmt.Errorf("empty path: give a local path or NAME:/path")
	}
	before, after, found := strings.Cut(arg, ":")
	if !found || before == "" || strings.HasPrefix(arg, ".") || strings.HasPrefix(arg, "/") ||
		(runtime.GOOS == "windows" && len(before) == 1) {
		return FileSpec{Path: arg}, nil
	}
	ns, name, hasNS := strings.Cut(before, "/")
	if !hasNS {
		ns, name = "", before
	}
	if ValidateName(name) != nil || (hasNS && ValidateName(ns) != nil) {
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
		return WorkspaceDir + "/", nil
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path contains a NUL byte")
	}
	into := strings.HasSuffix(p, "/") || p == "." || strings.HasSuffix(p, "/.")
	if !path.IsAbs(p) {
		p = path.Join(WorkspaceDir, p)
	}
	p = path.Clean(p)
	if into && p != "/" {
		p += "/"
	}
	return p, nil
}

// Scripts run by sh in the sandbox. Paths travel as arguments ("$1"), never
// inside the script text, so no file name can inject shell code.
const (
	// $1 = destination, $2 = name of the payload's top-level entry, $3 =
	// the destination's parent. An existing directory receives the payload;
	// anything else becomes it (through a staging directory beside it, so a
	// failed copy leaves nothing). No tar at all exits 127 before anything.
	extractScript = `dest=$1 base=$2 parent=$3
command -v tar >/dev/null 2>&1 || exit 127
if [ -d "$dest" ]; then cd -- "$dest" || exit 1; exec tar -xf -; fi
mkdir -p -- "$parent" && tmp=$(mktemp -d "$parent/.agentkernel-cp.XXXXXX") || exit 1
tar -xf - -C "$tmp"; rc=$?
if [ "$rc" -eq 0 ]; then mv -f -- "$tmp/$base" "$dest" || rc=1; fi
rm -rf -- "$tmp"; exit "$rc"`
	// $1 = directory to create and extract into.
	extractIntoScript = `command -v tar >/dev/null 2>&1 || exit 127; mkdir -p -- "$1" && cd -- "$1" || exit 1; exec tar -xf -`
	// $1 = parent directory, $2 = ./name to archive.
	archiveScript = `cd -- "$1" || exit 1; exec tar -cf - "$2"`
	// Without tar: $1 = destination, $2 = file name, $3 = "into" or "",
	// $4 = the destination's parent.
	catInScript  = `if [ "$3" = into ]; then mkdir -p -- "$1" || exit 1; t=$1/$2; elif [ -d "$1" ]; then t=$1/$2; else mkdir -p -- "$4" || exit 1; t=$1; fi; exec cat > "$t"`
	catOutScript = `if [ -d "$1" ]; then echo "$1 is a directory; copying a directory needs tar in the sandbox image" >&2; exit 21; fi; exec cat "$1"`
)

// exitNotFound is the shell's status for "command not found": here, no tar.
const exitNotFound = 127

// ErrNoTar explains what a sandbox image without tar can and cannot do.
var ErrNoTar = errors.New("the sandbox image has no tar, which copying a directory needs: use an image that has tar (e.g. the default busybox), or copy single files")

// CopyToSandbox copies a local file or directory into a sandbox, streaming
// a tar archive into the sandbox's tar. If remote ends in '/', the source
// goes into that directory (created if needed); if it names an existing
// directory, the source goes into it; otherwise the source is copied to that
// name. Without tar in the image a single file is still copied with cat.
func CopyToSandbox(ctx context.Context, r Runner, local, remote string, warn io.Writer) error {
	info, err := os.Stat(local)
	if err != nil {
		return fmt.Errorf("cannot copy %q: %v", local, errors.Unwrap(err))
	}
	abs, err := filepath.Abs(local)
	if err != nil {
		return err
	}
	base := filepath.Base(abs)
	if base == string(filepath.Separator) || base == "." {
		return fmt.Errorf("cannot copy the root directory %q: name a directory below it", local)
	}
	into := strings.HasSuffix(remote, "/")
	dest := strings.TrimSuffix(remote, "/")
	if dest == "" {
		dest = "/"
	}
	cmd := []string{"sh", "-c", extractScript, "sh", dest, base, path.Dir(dest)}
	if into {
		cmd = []string{"sh", "-c", extractIntoScript, "sh", dest}
	}

	pr, pw := io.Pipe()
	writeErr := make(chan error, 1)
	go func() {
		err := WriteTar(pw, abs, base, warn)
		pw.CloseWithError(err)
		writeErr <- err
	}()
	var stderr boundedBuffer
	runErr := r.Run(ctx, cmd, pr, io.Discard, &stderr)
	// Stops the tar writer if the sandbox stopped reading early.
	pr.CloseWithError(errSandboxStopped)
	if err := <-writeErr; err != nil && !errors.Is(err, errSandboxStopped) {
		return fmt.Errorf("reading %s: %w", local, err) // a local failure explains the remote one
	}
	if runErr == nil {
		return nil
	}
	if code, ok := ExitCode(runErr); ok && code == exitNotFound {
		if !info.Mode().IsRegular() {
			return ErrNoTar
		}
		fmt.Fprintln(warn, "warning: the sandbox image has no tar; copying the single file with cat")
		return catToSandbox(ctx, r, abs, dest, base, into)
	}
	return copyError("copy into the sandbox", runErr, &stderr)
}

func catToSandbox(ctx context.Context, r Runner, local, dest, base string, into bool) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	mode := ""
	if into {
		mode = "into"
	}
	var stderr boundedBuffer
	if err := r.Run(ctx, []string{"sh", "-c", catInScript, "sh", dest, base, mode, path.Dir(dest)}, f, io.Discard, &stderr); err != nil {
		return copyError("copy into the sandbox", err, &stderr)
	}
	return nil
}

// CopyFromSandbox copies a file or directory out of a sandbox. Everything
// coming out of the sandbox is hostile: entries outside the requested path,
// absolute names, "..", links that leave the copied tree and device files
// are refused or skipped, and nothing is ever written through a link that
// leads out of the destination.
func CopyFromSandbox(ctx context.Context, r Runner, remote, local string, warn io.Writer) error {
	remote = strings.TrimSuffix(remote, "/")
	if remote == "" || remote == "/" {
		return fmt.Errorf("cannot copy the sandbox's root directory: name a directory below it, e.g. %s", WorkspaceDir)
	}
	parent, base := path.Split(remote)
	target, root, err := localTarget(local, base)
	if err != nil {
		return err
	}
	defer root.Close()

	pr, pw := io.Pipe()
	var stderr boundedBuffer
	done := make(chan error, 1)
	go func() {
		err := r.Run(ctx, []string{"sh", "-c", archiveScript, "sh", parent, "./" + base}, nil, pw, &stderr)
		pw.CloseWithError(err)
		done <- err
	}()
	extractErr := extractTar(pr, root, base, target, warn)
	if extractErr == nil {
		// tar pads its archive to a whole record after the end marker; read
		// that (but not an endless stream) so the sandbox's tar exits cleanly.
		_, _ = io.CopyN(io.Discard, pr, maxTrailer)
	}
	// Unblock the sandbox's tar if extraction stopped early.
	pr.CloseWithError(errors.New("extraction stopped"))
	runErr := <-done
	if code, ok := ExitCode(runErr); ok && code == exitNotFound {
		fmt.Fprintln(warn, "warning: the sandbox image has no tar; copying a single file with cat")
		return catFromSandbox(ctx, r, remote, root, target)
	}
	var se *streamError
	if extractErr != nil && !errors.As(extractErr, &se) {
		return extractErr // a refused entry: the sandbox's tar only failed because we stopped reading
	}
	if runErr != nil {
		return copyError("copy out of the sandbox", runErr, &stderr)
	}
	return extractErr
}

// streamError: the tar stream itself broke (the sandbox's side failed or the
// connection dropped), as opposed to an entry being refused.
type streamError struct{ err error }

func (e *streamError) Error() string { return "reading the sandbox's tar stream: " + e.err.Error() }
func (e *streamError) Unwrap() error { return e.err }

var errSandboxStopped = errors.New("the sandbox stopped reading")

// maxTrailer bounds what is read after a tar stream's end marker (GNU tar
// pads to 10 KiB records).
const maxTrailer = 1 << 20

func catFromSandbox(ctx context.Context, r Runner, remote string, root *os.Root, target string) error {
	f, err := root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	var stderr boundedBuffer
	runErr := r.Run(ctx, []string{"sh", "-c", catOutScript, "sh", remote}, nil, f, &stderr)
	closeErr := f.Close()
	if runErr != nil {
		_ = root.Remove(target)
		if code, ok := ExitCode(runErr); ok && code == 21 {
			return ErrNoTar
		}
		return copyError("copy out of the sandbox", runErr, &stderr)
	}
	return closeErr
}

// localTarget opens the directory that will hold the copy and names the
// copy inside it: into local if it is a directory (or ends in a separator),
// else local itself is the new name.
func localTarget(local, base string) (string, *os.Root, error) {
	if local == "" {
		return "", nil, fmt.Errorf("empty local destination")
	}
	if strings.HasSuffix(local, "/") || strings.HasSuffix(local, string(filepath.Separator)) {
		if err := os.MkdirAll(local, 0o755); err != nil {
			return "", nil, err
		}
	}
	if info, err := os.Stat(local); err == nil && info.IsDir() {
		root, err := os.OpenRoot(local)
		return base, root, err
	}
	dir := filepath.Dir(local)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	root, err := os.OpenRoot(dir)
	return filepath.Base(local), root, err
}

// extractTar writes the archive's entry base (and everything below it) to
// target inside root. Entry names come from the sandbox: each is checked.
func extractTar(r io.Reader, root *os.Root, base, target string, warn io.Writer) error {
	tr := tar.NewReader(r)
	var tree *os.Root // target itself, once it is known to be a directory
	defer func() {
		if tree != nil {
			tree.Close()
		}
	}()
	seenTop := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if !seenTop {
				return &streamError{errors.New("the sandbox sent no files")}
			}
			return nil
		}
		if err != nil {
			return &streamError{err}
		}
		rel, err := entryPath(hdr.Name, base)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeXGlobalHeader, tar.TypeXHeader:
			continue
		}
		if rel == "" { // the top-level entry
			if seenTop {
				return fmt.Errorf("the sandbox's tar stream holds %q twice; refusing it", sanitize(hdr.Name))
			}
			seenTop = true
			switch hdr.Typeflag {
			case tar.TypeDir:
				if err := root.MkdirAll(target, dirMode(hdr)); err != nil {
					return err
				}
				if tree, err = root.OpenRoot(target); err != nil {
					return err
				}
			case tar.TypeReg:
				if err := writeFile(root, target, hdr, tr); err != nil {
					return err
				}
			default:
				fmt.Fprintf(warn, "warning: skipping %q: not a regular file or directory\n", sanitize(hdr.Name))
			}
			continue
		}
		if tree == nil {
			return fmt.Errorf("the sandbox's tar stream holds %q below a non-directory; refusing it", sanitize(hdr.Name))
		}
		if err := extractEntry(tree, rel, hdr, tr, base, warn); err != nil {
			return err
		}
	}
}

// entryPath checks an entry name and returns its path below the top-level
// entry ("" for the top-level entry itself).
func entryPath(name, base string) (string, error) {
	refuse := func(why string) (string, error) {
		return "", fmt.Errorf("the sandbox's tar stream holds %q (%s); refusing it", sanitize(name), why)
	}
	if strings.ContainsRune(name, 0) {
		return refuse("NUL byte")
	}
	if runtime.GOOS == "windows" && strings.ContainsAny(name, `\:`) {
		return refuse("a character Windows treats as a separator")
	}
	if path.IsAbs(name) {
		return refuse("absolute path")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return refuse("'..'")
		}
	}
	clean := path.Clean(name)
	top, rest, _ := strings.Cut(clean, "/")
	if top != base {
		return refuse(fmt.Sprintf("outside %q", base))
	}
	return rest, nil
}

func extractEntry(tree *os.Root, rel string, hdr *tar.Header, r io.Reader, base string, warn io.Writer) error {
	if dir := path.Dir(rel); dir != "." {
		if err := tree.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return tree.MkdirAll(rel, dirMode(hdr))
	case tar.TypeReg:
		return writeFile(tree, rel, hdr, r)
	case tar.TypeSymlink:
		if !linkStaysInside(rel, hdr.Linkname) {
			fmt.Fprintf(warn, "warning: skipping symlink %q -> %q: it points outside the copied directory\n", sanitize(hdr.Name), sanitize(hdr.Linkname))
			return nil
		}
		if err := removeExisting(tree, rel); err != nil {
			return err
		}
		return tree.Symlink(hdr.Linkname, rel)
	case tar.TypeLink:
		old, err := entryPath(hdr.Linkname, base)
		if err != nil || old == "" {
			fmt.Fprintf(warn, "warning: skipping hard link %q -> %q: it points outside the copied directory\n", sanitize(hdr.Name), sanitize(hdr.Linkname))
			return nil
		}
		if err := removeExisting(tree, rel); err != nil {
			return err
		}
		return tree.Link(old, rel)
	default:
		fmt.Fprintf(warn, "warning: skipping %q: devices, pipes and sockets are not copied\n", sanitize(hdr.Name))
		return nil
	}
}

// linkStaysInside reports whether a symlink at rel pointing at target
// resolves (lexically) inside the copied tree.
func linkStaysInside(rel, target string) bool {
	if target == "" || path.IsAbs(target) || strings.ContainsRune(target, 0) {
		return false
	}
	if runtime.GOOS == "windows" && strings.ContainsAny(target, `\:`) {
		return false
	}
	resolved := path.Join(path.Dir(rel), target)
	return resolved != ".." && !strings.HasPrefix(resolved, "../")
}

// removeExisting clears a path about to be replaced, so a regular file is
// never written through a link the archive planted earlier.
func removeExisting(tree *os.Root, rel string) error {
	info, err := tree.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("cannot replace directory %q with a file", rel)
	}
	return tree.Remove(rel)
}

func writeFile(root *os.Root, name string, hdr *tar.Header, r io.Reader) error {
	if info, err := root.Lstat(name); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		if err := root.Remove(name); err != nil {
			return err
		}
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode(hdr))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return &streamError{fmt.Errorf("writing %s: %w", name, err)}
	}
	if err := f.Close(); err != nil {
		return err
	}
	// O_CREATE's mode is masked by umask and ignored for existing files.
	if err := root.Chmod(name, fileMode(hdr)); err != nil {
		return err
	}
	return root.Chtimes(name, hdr.ModTime, hdr.ModTime)
}

// Modes from the sandbox lose setuid, setgid and sticky bits; directories
// stay writable by their owner so the rest of the copy can go into them.
func fileMode(hdr *tar.Header) fs.FileMode { return fs.FileMode(hdr.Mode) & 0o777 }
func dirMode(hdr *tar.Header) fs.FileMode  { return fs.FileMode(hdr.Mode)&0o777 | 0o700 }

// WriteTar writes src (a file or a directory tree) as a tar stream whose
// top-level entry is named top. Symlinks are stored as links, never
// followed; devices, pipes and sockets are skipped with a warning. No local
// user or group names leave the machine.
func WriteTar(w io.Writer, src, top string, warn io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := top
		if rel != "." {
			name = top + "/" + filepath.ToSlash(rel)
		}
		var info fs.FileInfo
		if p == src {
			info, err = os.Stat(p) // the source itself may be a link to what the user means
		} else {
			info, err = d.Info()
		}
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		} else if !info.Mode().IsRegular() && !info.IsDir() {
			fmt.Fprintf(warn, "warning: skipping %s: devices, pipes and sockets are not copied\n", p)
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return fmt.Errorf("reading %s: %w (did it change during the copy?)", p, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func copyError(what string, err error, stderr *boundedBuffer) error {
	msg := strings.TrimSpace(stderr.String())
	if code, ok := ExitCode(err); ok {
		if msg == "" {
			return fmt.Errorf("%s failed: exit code %d", what, code)
		}
		return fmt.Errorf("%s failed (exit code %d): %s", what, code, msg)
	}
	if msg != "" {
		return fmt.Errorf("%s failed: %v: %s", what, err, msg)
	}
	return fmt.Errorf("%s failed: %w", what, err)
}

// boundedBuffer keeps the first 16 KiB of a sandbox's stderr for an error
// message, printable characters only: the sandbox must not be able to flood
// the user's memory or drive their terminal with escape sequences.
type boundedBuffer struct {
	buf bytes.Buffer
}

const maxStderr = 16 << 10

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := maxStderr - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string { return sanitize(b.buf.String()) }

// sanitize replaces control characters (other than newline and tab) in text
// that came from a sandbox, so it can be printed safely.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, s)
}
