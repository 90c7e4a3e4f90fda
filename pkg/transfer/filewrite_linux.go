package transfer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func (x *extractor) writeFileFast(root *os.Root, name string, hdr *tar.Header, r io.Reader) error {
	return x.writeFileAt(root, name, hdr, r)
}

// writeFileAt is writeFileRoot in four system calls a file — openat,
// write, close, utimensat, all relative to the directory's descriptor —
// where os.Root spends eleven (a stat before the open, the poller's four
// fcntl and one epoll_ctl, a readlinkat before the utimensat). A copy of
// many small files out of a sandbox is mostly these calls.
//
// The rules are writeFileRoot's, kept by the same flags: name is one
// element inside a directory opened through the os.Root; O_CREAT|O_EXCL
// with O_NOFOLLOW never opens what is there, a link least of all; only when
// something is there is it removed (never a directory) and the file made
// afresh; the times are set with AT_SYMLINK_NOFOLLOW, so a link swapped in
// meanwhile is not followed either.
func (x *extractor) writeFileAt(root *os.Root, name string, hdr *tar.Header, r io.Reader) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("cannot write %q: not a single name", name) // entryPath and parent never make one
	}
	dir, err := x.dirFD(root)
	if err != nil {
		return err
	}
	mode := uint32(fileMode(hdr))
	open := func() (int, error) {
		for {
			fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
			if !errors.Is(err, unix.EINTR) {
				return fd, err
			}
		}
	}
	fd, err := open()
	if errors.Is(err, unix.EEXIST) {
		if err := removeExisting(root, name); err != nil {
			return err
		}
		fd, err = open()
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: name, Err: err}
	}
	copyErr := copyToFD(fd, r, x.copyBuf)
	closeErr := unix.Close(fd)
	if copyErr != nil {
		return &streamError{fmt.Errorf("writing %s: %w", name, copyErr)}
	}
	if closeErr != nil {
		return &fs.PathError{Op: "close", Path: name, Err: closeErr}
	}
	times := []unix.Timespec{utimespec(hdr.ModTime), utimespec(hdr.ModTime)}
	for {
		err := unix.UtimesNanoAt(dir, name, times, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "chtimes", Path: name, Err: err}
		}
		return nil
	}
}

// dirFD is the descriptor of root's directory, opened once for all the
// files made in it one after another.
func (x *extractor) dirFD(root *os.Root) (int, error) {
	if x.fdRoot != root {
		if x.fdDir != nil {
			x.fdDir.Close()
		}
		x.fdRoot, x.fdDir = nil, nil
		f, err := root.Open(".")
		if err != nil {
			return -1, err
		}
		x.fdRoot, x.fdDir = root, f
	}
	return int(x.fdDir.Fd()), nil
}

// copyToFD writes all of r to fd through buf.
func copyToFD(fd int, r io.Reader, buf []byte) error {
	for {
		n, rerr := r.Read(buf)
		for b := buf[:n]; len(b) > 0; {
			m, err := unix.Write(fd, b)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return err
			}
			if m == 0 {
				return io.ErrShortWrite
			}
			b = b[m:]
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// utimespec is t as os.Chtimes passes it: the zero time leaves the file's
// time alone.
func utimespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Sec: 0, Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t.UnixNano())
}
