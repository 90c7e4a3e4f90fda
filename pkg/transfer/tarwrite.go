package transfer

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// WriteTar writes src (a file or a directory tree) as a tar stream whose
// top-level entry is named top. Symlinks are stored as links, never
// followed; devices, pipes and sockets are skipped with a warning. No local
// user or group names leave the machine.
func WriteTar(w io.Writer, src, top string, warn io.Writer) error {
	tw := tar.NewWriter(w)
	if err := writeTarTree(tw, src, top, warn); err != nil {
		return err
	}
	return tw.Close()
}

// writeTarTree writes src to tw as WriteTar does, without ending the archive,
// so that several trees can share one stream.
func writeTarTree(tw *tar.Writer, src, top string, warn io.Writer) error {
	// One buffer for every file: io.CopyN would allocate 32 KiB per file.
	buf := make([]byte, copyBufSize)
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
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
		hdr.Mode = portableMode(hdr.Mode, info.IsDir(), runtime.GOOS)
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
		if n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf); err != nil || n < hdr.Size {
			if err == nil {
				err = io.EOF // what io.CopyN said: the file shrank
			}
			return fmt.Errorf("reading %s: %w (did it change during the copy?)", p, err)
		}
		return nil
	})
}
