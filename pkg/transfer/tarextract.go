package transfer

import (
	"archive/tar"
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

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

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

// Limits bound what one copy out of a sandbox may write locally: a hostile
// sandbox can send a stream of headers that claims terabytes, or millions of
// entries, for a few bytes of its own storage.
type Limits struct {
	MaxBytes int64 // file content, in bytes
	MaxFiles int64 // entries of any kind
}

// LimitError says which limit a copy hit, and how to raise it.
type LimitError struct {
	What  string // "bytes" or "files"
	Limit int64
	Field string // "maxBytes" or "maxFiles"
}

func (e *LimitError) Error() string { return e.field().Error() }

// Unwrap gives the field, for an edge to name it in its own words.
func (e *LimitError) Unwrap() error { return e.field() }

func (e *LimitError) field() field.Error {
	return field.Invalid(e.Field, "copy stopped: the sandbox sent more than %d %s (the limit of `%s`); raise it with `%s` if you expect that much", e.Limit, e.What, e.Field, e.Field)
}

// extractor writes the archive's entry base (and everything below it) to
// target inside root. Entry names and links come from the sandbox: each is
// checked before anything is written, and a symlink is kept only if it
// passes linkRefusal, a rule that later entries and later copies into the
// same tree cannot break (see there).
type extractor struct {
	ctx          context.Context
	root         *os.Root
	base, target string
	limits       Limits
	warn         io.Writer

	tree         *os.Root // target itself, once it is known to be a directory
	bytes, files int64
	// The directory the last entry went into, kept open: tar streams list a
	// directory's entries together, and every path resolved through an
	// os.Root costs an openat per component (one file of a deep tree would
	// otherwise cost a dozen system calls).
	dirName string
	dir     *os.Root
	// copyBuf carries every file's content: io.Copy into an *os.File
	// would allocate 32 KiB per file.
	copyBuf []byte
	// The directory writeFileAt last made a file in, and that directory
	// opened as a file, for its descriptor (os.Root does not show its own).
	fdRoot *os.Root
	fdDir  *os.File
	// A link in the tree that climbs (the user's), once looked for.
	climbing        string
	climbingChecked bool
}

// extractTar's errors may quote names the sandbox chose (a file system
// error names the path it failed on): they come back printable and bounded.
func extractTar(ctx context.Context, r io.Reader, root *os.Root, base, target string, limits Limits, warn io.Writer) error {
	x := &extractor{ctx: ctx, root: root, base: base, target: target, limits: limits, warn: warn}
	defer func() {
		if x.dir != nil {
			x.dir.Close()
		}
		if x.tree != nil {
			x.tree.Close()
		}
		if x.fdDir != nil {
			x.fdDir.Close()
		}
	}()
	if err := x.extract(tar.NewReader(r)); err != nil {
		return untrusted.Error(err)
	}
	return nil
}

func (x *extractor) extract(tr *tar.Reader) error {
	seenTop := false
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
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
		rel, err := entryPath(hdr.Name, x.base)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeXGlobalHeader, tar.TypeXHeader:
			continue
		}
		if err := x.count(hdr); err != nil {
			return err
		}
		if rel == "" { // the top-level entry
			if seenTop {
				return fmt.Errorf("the sandbox's tar stream holds %q twice; refusing it", untrusted.Shown(hdr.Name))
			}
			seenTop = true
			switch hdr.Typeflag {
			case tar.TypeDir:
				if err := x.root.MkdirAll(x.target, dirMode(hdr)); err != nil {
					return err
				}
				if x.tree, err = x.root.OpenRoot(x.target); err != nil {
					return err
				}
			case tar.TypeReg:
				if err := x.writeFile(x.root, x.target, hdr, tr); err != nil {
					return err
				}
			default:
				fmt.Fprintf(x.warn, "warning: skipping %q: not a regular file or directory\n", untrusted.Shown(hdr.Name))
			}
			continue
		}
		if x.tree == nil {
			return fmt.Errorf("the sandbox's tar stream holds %q below a non-directory; refusing it", untrusted.Shown(hdr.Name))
		}
		if err := x.entry(rel, hdr, tr); err != nil {
			return err
		}
	}
}

// count charges an entry to the limits before anything is written, and
// refuses sparse files: their few bytes on the wire expand to any size.
func (x *extractor) count(hdr *tar.Header) error {
	if isSparse(hdr) {
		return fmt.Errorf("the sandbox's tar stream holds %q as a sparse file, which can expand to any size on disk; refusing it", untrusted.Shown(hdr.Name))
	}
	x.files++
	if x.limits.MaxFiles > 0 && x.files > x.limits.MaxFiles {
		return &LimitError{What: "files", Limit: x.limits.MaxFiles, Field: "maxFiles"}
	}
	if hdr.Typeflag == tar.TypeReg {
		x.bytes += hdr.Size
		if x.limits.MaxBytes > 0 && (hdr.Size > x.limits.MaxBytes || x.bytes > x.limits.MaxBytes) {
			return &LimitError{What: "bytes", Limit: x.limits.MaxBytes, Field: "maxBytes"}
		}
	}
	return nil
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// entryPath checks an entry name and returns its path below the top-level
// entry ("" for the top-level entry itself).
func entryPath(name, base string) (string, error) {
	refuse := func(why string) (string, error) {
		return "", fmt.Errorf("the sandbox's tar stream holds %q (%s); refusing it", untrusted.Shown(name), why)
	}
	if len(name) > maxPath {
		return refuse("longer than PATH_MAX")
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

// parent returns rel's directory, opened (and made, if need be) inside the
// tree, and rel's last element.
func (x *extractor) parent(rel string) (*os.Root, string, error) {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return x.tree, base, nil
	}
	if x.dir != nil && x.dirName == dir {
		return x.dir, base, nil
	}
	if err := x.tree.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	d, err := x.tree.OpenRoot(dir)
	if err != nil {
		return nil, "", err
	}
	if x.dir != nil {
		x.dir.Close()
	}
	x.dir, x.dirName = d, dir
	return d, base, nil
}

func (x *extractor) entry(rel string, hdr *tar.Header, r io.Reader) error {
	tree := x.tree
	switch hdr.Typeflag {
	case tar.TypeDir:
		return tree.MkdirAll(rel, dirMode(hdr))
	case tar.TypeReg:
		dir, base, err := x.parent(rel)
		if err != nil {
			return err
		}
		return x.writeFile(dir, base, hdr, r)
	case tar.TypeSymlink:
		return x.symlink(rel, hdr.Name, hdr.Linkname)
	case tar.TypeLink:
		old, err := entryPath(hdr.Linkname, x.base)
		if err != nil || old == "" {
			fmt.Fprintf(x.warn, "warning: skipping hard link %q -> %q: it points outside the copied directory\n", untrusted.Shown(hdr.Name), untrusted.Shown(hdr.Linkname))
			return nil
		}
		// linkat does not follow a symlink: a hard link to one is a second
		// symlink, whose target now resolves from another directory. Make
		// it as the symlink it is, under the same rule.
		info, err := tree.Lstat(old)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(x.warn, "warning: skipping hard link %q -> %q: its target was not copied\n", untrusted.Shown(hdr.Name), untrusted.Shown(hdr.Linkname))
			return nil
		}
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := tree.Readlink(old)
			if err != nil {
				return err
			}
			return x.symlink(rel, hdr.Name, target)
		}
		dir, base, err := x.parent(rel)
		if err != nil {
			return err
		}
		if err := removeExisting(dir, base); err != nil {
			return err
		}
		return tree.Link(old, rel)
	default:
		fmt.Fprintf(x.warn, "warning: skipping %q: devices, pipes and sockets are not copied\n", untrusted.Shown(hdr.Name))
		return nil
	}
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
		return fmt.Errorf("cannot replace directory %q with a file", untrusted.Shown(rel))
	}
	return tree.Remove(rel)
}

// writeFile makes name afresh, as tar -x does for a user other than root:
// whatever was there (a link, a file hard-linked elsewhere) is removed, not
// written through, and the new file's mode passes through the user's umask
// (O_CREATE applies it), so a sandbox cannot drop world-writable files
// into a project. On Linux it is writeFileAt (filewrite_linux.go), the same
// steps in fewer system calls; elsewhere writeFileRoot.
func (x *extractor) writeFile(root *os.Root, name string, hdr *tar.Header, r io.Reader) error {
	if x.copyBuf == nil {
		x.copyBuf = make([]byte, copyBufSize)
	}
	return x.writeFileFast(root, name, hdr, r)
}

// writeFileRoot is writeFile through os.Root alone.
func (x *extractor) writeFileRoot(root *os.Root, name string, hdr *tar.Header, r io.Reader) error {
	if err := removeExisting(root, name); err != nil {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode(hdr))
	if err != nil {
		return err
	}
	// Hiding the file's ReadFrom keeps io.CopyBuffer on copyBuf.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, r, x.copyBuf); err != nil {
		f.Close()
		return &streamError{fmt.Errorf("writing %s: %w", name, err)}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return root.Chtimes(name, hdr.ModTime, hdr.ModTime)
}

// copyBufSize: files are written in pieces of at most this size.
const copyBufSize = 64 << 10

// Modes from the sandbox lose setuid, setgid and sticky bits, and pass
// through the umask when the file or directory is made; directories stay
// writable by their owner so the rest of the copy can go into them.
func fileMode(hdr *tar.Header) fs.FileMode { return fs.FileMode(hdr.Mode) & 0o777 }
func dirMode(hdr *tar.Header) fs.FileMode  { return fs.FileMode(hdr.Mode)&0o777 | 0o700 }
