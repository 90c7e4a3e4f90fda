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
	"slices"
	"syscall"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// CopyToSandboxFrom is CopyToSandbox for a source inside root, named
// relative to it. Everything is read through root: the source is opened
// once (a link is followed only while it stays inside root), a directory is
// walked through handles opened from its parent's, and every file is opened
// before it is described, its header taken from the opened file — so an
// entry swapped for a link to somewhere else between a look and a read can
// only fail the copy, never carry what lies outside root.
func CopyToSandboxFrom(ctx context.Context, r sandbox.Runner, root *os.Root, local, remote string, warn io.Writer) error {
	local = filepath.Clean(local)
	base := filepath.Base(filepath.Join(root.Name(), local))
	if base == string(filepath.Separator) || base == "." {
		return fmt.Errorf("cannot copy the root directory %q: name a directory below it", local)
	}
	src, err := openSource(root, local)
	if err != nil {
		return fmt.Errorf("cannot copy %q: %v", local, unwrapPath(err))
	}
	defer src.Close()

	cmd, dest, into := extractCommand(remote, base)
	var stderr untrusted.Buffer
	runErr, err := sendTar(ctx, r, cmd, &stderr, func(w io.Writer) error { return src.writeTar(w, base, warn) })
	if err != nil {
		return fmt.Errorf("reading %s: %w", local, err) // a local failure explains the remote one
	}
	if runErr == nil {
		return nil
	}
	if code, ok := sandbox.ExitCode(runErr); ok && code == exitNotFound {
		if src.dir != nil {
			return ErrNoTar
		}
		fmt.Fprintln(warn, "warning: the sandbox image has no tar; copying the single file with cat")
		if _, err := src.file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		mode := ""
		if into {
			mode = "into"
		}
		stderr = untrusted.Buffer{}
		if err := r.Run(ctx, []string{"sh", "-c", catInScript, "sh", dest, base, mode, path.Dir(dest)}, src.file, io.Discard, &stderr); err != nil {
			return copyError("copy into the sandbox", err, &stderr)
		}
		return nil
	}
	return copyError("copy into the sandbox", runErr, &stderr)
}

// rootSource is an opened source: a regular file, or a directory.
type rootSource struct {
	file *os.File
	info fs.FileInfo
	dir  *os.Root // when it is a directory
}

// openNoWait opens for reading without blocking on a FIFO (one swapped in
// for a file would otherwise hang the copy for ever); it is refused once
// its Stat shows what it is.
func openNoWait(dir *os.Root, name string) (*os.File, error) {
	return dir.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

func openSource(root *os.Root, name string) (*rootSource, error) {
	f, err := openNoWait(root, name)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	src := &rootSource{file: f, info: info}
	switch {
	case info.Mode().IsRegular():
		return src, nil
	case info.IsDir():
		if src.dir, err = openDirAs(root, name, info); err != nil {
			f.Close()
			return nil, err
		}
		return src, nil
	default:
		f.Close()
		return nil, fmt.Errorf("not a regular file or directory")
	}
}

func (s *rootSource) Close() error {
	if s.dir != nil {
		s.dir.Close()
	}
	return s.file.Close()
}

func (s *rootSource) writeTar(w io.Writer, top string, warn io.Writer) error {
	tw := tar.NewWriter(w)
	var err error
	if s.dir != nil {
		err = writeDirTar(tw, s.dir, s.info, top, warn)
	} else {
		err = writeFileTar(tw, s.file, s.info, top)
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

// openDirAs opens name (inside parent) as a root of its own, and makes sure
// it is the directory described by want: a directory swapped between the
// look and the open fails the copy.
func openDirAs(parent *os.Root, name string, want fs.FileInfo) (*os.Root, error) {
	dir, err := parent.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	got, err := dir.Stat(".")
	if err != nil {
		dir.Close()
		return nil, err
	}
	if !os.SameFile(got, want) {
		dir.Close()
		return nil, errChanged(name)
	}
	return dir, nil
}

func errChanged(name string) error {
	return fmt.Errorf("%s changed while it was being copied; copy it again", name)
}

// writeDirTar writes dir (described by info) as name/ and everything below
// it. Names come from the directory's own handle; each entry is looked at
// without following links, and links are stored as links.
func writeDirTar(tw *tar.Writer, dir *os.Root, info fs.FileInfo, name string, warn io.Writer) error {
	if err := writeHeader(tw, info, "", name+"/"); err != nil {
		return err
	}
	d, err := dir.Open(".")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, n := range names {
		child := name + "/" + n
		info, err := dir.Lstat(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := dir.Readlink(n)
			if err != nil {
				return err
			}
			if err := writeHeader(tw, info, link, child); err != nil {
				return err
			}
		case info.IsDir():
			sub, err := openDirAs(dir, n, info)
			if err != nil {
				return err
			}
			err = writeDirTar(tw, sub, info, child, warn)
			sub.Close()
			if err != nil {
				return err
			}
		case info.Mode().IsRegular():
			f, err := openNoWait(dir, n)
			if err != nil {
				return err
			}
			opened, err := f.Stat()
			if err == nil && !os.SameFile(opened, info) {
				err = errChanged(child)
			}
			if err == nil {
				err = writeFileTar(tw, f, opened, child)
			}
			f.Close()
			if err != nil {
				return err
			}
		default:
			fmt.Fprintf(warn, "warning: skipping %s: devices, pipes and sockets are not copied\n", child)
		}
	}
	return nil
}

// writeFileTar writes an opened regular file; its header comes from the
// opened file itself.
func writeFileTar(tw *tar.Writer, f *os.File, info fs.FileInfo, name string) error {
	if !info.Mode().IsRegular() {
		return errChanged(name)
	}
	if err := writeHeader(tw, info, "", name); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, info.Size()); err != nil {
		return fmt.Errorf("reading %s: %w (did it change during the copy?)", name, err)
	}
	return nil
}

// writeHeader writes an entry's header; no local user or group names leave
// the machine.
func writeHeader(tw *tar.Writer, info fs.FileInfo, link, name string) error {
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	return tw.WriteHeader(hdr)
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
