package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stdinRecorder reads the copy's stdin the way client-go does (io.Copy's
// 32 KiB buffer, one stream message per Read) and keeps what it got.
type stdinRecorder struct {
	reads int
	got   bytes.Buffer
}

func (r *stdinRecorder) Run(_ context.Context, _ []string, stdin io.Reader, _, _ io.Writer) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := stdin.Read(buf)
		if n > 0 {
			r.reads++
			r.got.Write(buf[:n])
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// A tree of small files goes into the sandbox in whole chunks, not one
// stream message per tar header and per file.
func TestCopyToSandboxSendsWholeChunks(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tree")
	files := map[string]string{}
	for i := range 300 {
		files[fmt.Sprintf("d%d/f%d", i/30, i)] = strings.Repeat("x", 700)
	}
	writeTree(t, src, files)
	r := &stdinRecorder{}
	if err := CopyToSandbox(context.Background(), r, src, "/workspace/", io.Discard); err != nil {
		t.Fatal(err)
	}
	if max := r.got.Len()/streamChunk + 1; r.reads > max {
		t.Errorf("%d bytes of tar came in %d reads; want at most %d (whole %d-byte chunks)", r.got.Len(), r.reads, max, streamChunk)
	}
	n := 0
	tr := tar.NewReader(&r.got)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the stream is not a whole tar: %v", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			n++
		}
	}
	if n != len(files) {
		t.Errorf("the stream holds %d files, want %d", n, len(files))
	}
}

// trickleRunner sends its tar stream a few bytes per write, as a slow
// connection delivers it.
type trickleRunner struct {
	stream []byte
	piece  int
}

func (r *trickleRunner) Run(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
	for b := r.stream; len(b) > 0; {
		n := min(r.piece, len(b))
		if _, err := stdout.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// The buffered reading of a copy out does not depend on how the stream is
// cut: files larger than the copy buffer and many small ones come out
// whole, with the trailer after the end marker read.
func TestCopyFromSandboxAnyChunking(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 3*copyBufSize/16+5)
	entries := []entry{{name: "./out/", typ: tar.TypeDir}, {name: "./out/big", typ: tar.TypeReg, body: big}}
	for i := range 50 {
		entries = append(entries, entry{name: fmt.Sprintf("./out/s%d", i), typ: tar.TypeReg, body: strings.Repeat("y", i*37)})
	}
	stream := append(makeTar(t, entries), make([]byte, 10<<10)...) // GNU tar's record padding
	for _, piece := range []int{1, 511, 4096, 2*streamChunk + 3} {
		t.Run(fmt.Sprint(piece), func(t *testing.T) {
			if testing.Short() && piece == 1 {
				t.Skip("byte-by-byte stream skipped in -short mode")
			}
			dir := t.TempDir()
			if err := CopyFromSandbox(context.Background(), &trickleRunner{stream, piece}, "/workspace/out", dir, Limits{}, io.Discard); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "out", "big"))
			if err != nil || string(b) != big {
				t.Fatalf("big file: %d bytes, err %v; want %d bytes as sent", len(b), err, len(big))
			}
			for i := range 50 {
				b, err := os.ReadFile(filepath.Join(dir, "out", fmt.Sprintf("s%d", i)))
				if err != nil || len(b) != i*37 {
					t.Fatalf("s%d: %d bytes, err %v; want %d", i, len(b), err, i*37)
				}
			}
		})
	}
}
