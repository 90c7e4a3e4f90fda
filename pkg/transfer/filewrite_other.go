//go:build !linux

package transfer

import (
	"archive/tar"
	"io"
	"os"
)

func (x *extractor) writeFileFast(root *os.Root, name string, hdr *tar.Header, r io.Reader) error {
	return x.writeFileRoot(root, name, hdr, r)
}
