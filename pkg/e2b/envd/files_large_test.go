package envd

import (
	"crypto/sha256"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// patternReader is size bytes of a pattern with every byte value, made as
// it is read: the test's side holds no copy.
type patternReader struct{ off, size int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.size-r.off))
	for i := range n {
		x := r.off + int64(i)
		p[i] = byte(x ^ x>>8 ^ x>>16)
	}
	r.off += int64(n)
	return n, nil
}

// heapPeak samples the heap in use until stop is called.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// TestFilesLargeStreamed uploads and downloads 64 MiB, streamed both ways
// (no Content-Length: the SDK's ReadableStream upload), and checks that
// neither the server nor the client held it whole.
func TestFilesLargeStreamed(t *testing.T) {
	const size = 64 << 20
	f := startEnvd(t, "")
	p := f.path("large.bin")
	want := sha256.New()
	_, _ = io.Copy(want, &patternReader{size: size})

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := heapPeak()
	start := time.Now()
	infos := decodeInfos(t, f.uploadRaw(t, p, io.MultiReader(&patternReader{size: size}), nil))
	up := time.Since(start)
	if len(infos) != 1 || infos[0].Path != p {
		t.Fatalf("answered %+v", infos)
	}
	start = time.Now()
	res, err := f.client.Get(f.filesURL(p))
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, res.Body)
	res.Body.Close()
	down := time.Since(start)
	peak := stop()
	if err != nil || n != size || res.StatusCode != http.StatusOK || string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatalf("download: %d bytes, %v, status %d, same content %v", n, err, res.StatusCode, string(got.Sum(nil)) == string(want.Sum(nil)))
	}
	grew := int64(peak) - int64(base.HeapInuse)
	t.Logf("64 MiB: upload %v, download %v, heap grew at most %d KiB", up, down, grew>>10)
	if grew > 16<<20 {
		t.Errorf("the heap grew by %d MiB moving 64 MiB: something held it whole", grew>>20)
	}
	noTemporaries(t, f.dir)
}
