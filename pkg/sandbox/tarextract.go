package sandbox

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
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
