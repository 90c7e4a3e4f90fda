package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
)

// BenchmarkCopyOutSmallFiles: 5,000 files of 1 KiB in 50 directories, as a
// repository's tree looks, extracted from one stream.
func BenchmarkCopyOutSmallFiles(b *testing.B) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "./out/", Typeflag: tar.TypeDir, Mode: 0o755})
	body := bytes.Repeat([]byte("x"), 1024)
	for d := 0; d < 50; d++ {
		_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("./out/src/pkg%d/", d), Typeflag: tar.TypeDir, Mode: 0o755})
		for f := 0; f < 100; f++ {
			_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("./out/src/pkg%d/f%d.go", d, f), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1024})
			_, _ = tw.Write(body)
		}
	}
	_ = tw.Close()
	stream := buf.Bytes()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := CopyFromSandbox(context.Background(), &tarRunner{stream}, "/workspace/out", b.TempDir(), Limits{}, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
