package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// BenchmarkCopyInSmallFiles: the same tree, archived and sent into a
// sandbox that reads its stdin as client-go does.
func BenchmarkCopyInSmallFiles(b *testing.B) {
	src := filepath.Join(b.TempDir(), "in")
	for d := 0; d < 50; d++ {
		dir := filepath.Join(src, "src", fmt.Sprintf("pkg%d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 100; f++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.go", f)), bytes.Repeat([]byte("x"), 1024), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &stdinRecorder{}
		if err := CopyToSandbox(context.Background(), r, src, "/workspace/", io.Discard); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(r.reads), "reads/op")
	}
}
