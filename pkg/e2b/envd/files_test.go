package envd

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// everyByte is content with every byte value, twice.
func everyByte() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func (f *envdFixture) filesURL(p string) string {
	return f.url + "/files?" + url.Values{"path": {p}, "username": {"user"}}.Encode()
}

// uploadRaw sends body as application/octet-stream.
func (f *envdFixture) uploadRaw(t *testing.T, p string, body io.Reader, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.filesURL(p), body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// uploadParts sends files as the SDK's FormData does: one "file" part
// each, its path as the part's filename.
func (f *envdFixture) uploadParts(t *testing.T, query string, files [][2]string) *http.Response {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, file := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, file[0]))
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(file[1]))
	}
	_ = mw.Close()
	u := f.url + "/files"
	if query != "" {
		u += "?" + url.Values{"path": {query}}.Encode()
	}
	res, err := f.client.Post(u, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *envdFixture) download(t *testing.T, p string) (*http.Response, []byte) {
	t.Helper()
	res, err := f.client.Get(f.filesURL(p))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// wantHTTPError checks the spec's Error body.
func wantHTTPError(t *testing.T, res *http.Response, code int, says string) {
	t.Helper()
	defer res.Body.Close()
	var e httpError
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
		t.Fatalf("status %d, body not the spec's Error: %v", res.StatusCode, err)
	}
	if res.StatusCode != code || e.Code != code || !strings.Contains(e.Message, says) || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got %d %+v, want %d saying %q", res.StatusCode, e, code, says)
	}
}

func decodeInfos(t *testing.T, res *http.Response) []writeInfo {
	t.Helper()
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("upload: %d %s", res.StatusCode, b)
	}
	var infos []writeInfo
	if err := json.NewDecoder(res.Body).Decode(&infos); err != nil {
		t.Fatal(err)
	}
	return infos
}

// noTemporaries fails when an upload left a temporary file below dir.
func noTemporaries(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".ak-upload-") {
			t.Errorf("an upload left %s behind", e.Name())
		}
	}
}

func TestFilesUploadDownload(t *testing.T) {
	for shell, tools := range shells(t) {
		t.Run(shell, func(t *testing.T) {
			f := startEnvd(t, tools)
			content := everyByte()
			for _, name := range hostile {
				p := f.path("up/" + name)
				infos := decodeInfos(t, f.uploadRaw(t, p, bytes.NewReader(content), nil))
				if len(infos) != 1 || infos[0] != (writeInfo{Path: p, Name: name, Type: "file"}) {
					t.Errorf("upload %q answered %+v", name, infos)
				}
				if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, content) {
					t.Errorf("uploaded %q: %v, content differs", name, err)
				}
				res, b := f.download(t, p)
				if res.StatusCode != http.StatusOK || !bytes.Equal(b, content) || res.Header.Get("Content-Length") != "512" {
					t.Errorf("download %q: %d, %d bytes, Content-Length %q", name, res.StatusCode, len(b), res.Header.Get("Content-Length"))
				}
			}
			noTemporaries(t, f.path("up"))

			// An upload overwrites; an empty file comes back with
			// Content-Length 0, which the SDK reads as "".
			p := f.path("up/plain.txt")
			decodeInfos(t, f.uploadRaw(t, p, strings.NewReader(""), nil))
			if res, b := f.download(t, p); res.StatusCode != http.StatusOK || len(b) != 0 || res.Header.Get("Content-Length") != "0" {
				t.Errorf("empty download: %d %q %q", res.StatusCode, b, res.Header.Get("Content-Length"))
			}

			// An overwritten file keeps its mode.
			if err := os.Chmod(p, 0o751); err != nil {
				t.Fatal(err)
			}
			decodeInfos(t, f.uploadRaw(t, p, strings.NewReader("#!/bin/sh\n"), nil))
			if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o751 {
				t.Errorf("an overwritten file's mode: %v, %v", st.Mode(), err)
			}

			// gzip, as the SDK sends it with {gzip: true}.
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			_, _ = zw.Write(content)
			_ = zw.Close()
			decodeInfos(t, f.uploadRaw(t, p, &gz, http.Header{"Content-Encoding": {"gzip"}}))
			if b, _ := os.ReadFile(p); !bytes.Equal(b, content) {
				t.Errorf("a gzip upload wrote %d bytes", len(b))
			}
		})
	}
}

func TestFilesUploadMultipart(t *testing.T) {
	for shell, tools := range shells(t) {
		t.Run(shell, func(t *testing.T) {
			f := startEnvd(t, tools)
			// writeFiles: many files, each named by its part, new
			// directories made.
			files := [][2]string{{f.path("m/a.txt"), "a"}, {f.path("m/deep/er/b\"q'.bin"), string(everyByte())}, {f.path("m/c"), ""}}
			infos := decodeInfos(t, f.uploadParts(t, "", files))
			if len(infos) != len(files) {
				t.Fatalf("answered %+v", infos)
			}
			for i, file := range files {
				if infos[i].Path != file[0] || infos[i].Type != "file" {
					t.Errorf("entry %d = %+v", i, infos[i])
				}
				if b, err := os.ReadFile(file[0]); err != nil || string(b) != file[1] {
					t.Errorf("%s: %v, %d bytes", file[0], err, len(b))
				}
			}
			// write(path, data): ?path= names the file, whatever the part says.
			p := f.path("m/single")
			infos = decodeInfos(t, f.uploadParts(t, p, [][2]string{{"ignored", "one"}}))
			if len(infos) != 1 || infos[0].Path != p {
				t.Errorf("answered %+v", infos)
			}
			if b, _ := os.ReadFile(p); string(b) != "one" {
				t.Errorf("single = %q", b)
			}
			wantHTTPError(t, f.uploadParts(t, p, [][2]string{{"a", "1"}, {"b", "2"}}), http.StatusBadRequest, "several files")
			wantHTTPError(t, f.uploadParts(t, "", nil), http.StatusBadRequest, `no "file" part`)
			wantHTTPError(t, f.uploadParts(t, "", [][2]string{{f.path("m"), "x"}}), http.StatusBadRequest, "is a directory")
			wantHTTPError(t, f.uploadParts(t, "", [][2]string{{"", "x"}}), http.StatusBadRequest, "path is required")
			noTemporaries(t, f.path("m"))
		})
	}
}

func TestFilesErrors(t *testing.T) {
	f := startEnvd(t, "")
	writeFiles(t, f.dir, "file")
	res, _ := f.client.Get(f.filesURL(f.path("missing")))
	wantHTTPError(t, res, http.StatusNotFound, "does not exist")
	res, _ = f.client.Get(f.filesURL(f.dir))
	wantHTTPError(t, res, http.StatusBadRequest, "is a directory")
	res, _ = f.client.Get(f.url + "/files")
	wantHTTPError(t, res, http.StatusBadRequest, "path is required")

	wantHTTPError(t, f.uploadRaw(t, "", strings.NewReader("x"), nil), http.StatusBadRequest, "?path=")
	wantHTTPError(t, f.uploadRaw(t, f.dir, strings.NewReader("x"), nil), http.StatusBadRequest, "is a directory")
	wantHTTPError(t, f.uploadRaw(t, f.path("file/below"), strings.NewReader("x"), nil), http.StatusInternalServerError, "writing")
	wantHTTPError(t, f.uploadRaw(t, f.path("z"), strings.NewReader("x"), http.Header{"Content-Encoding": {"br"}}), http.StatusBadRequest, "Content-Encoding")
	wantHTTPError(t, f.uploadRaw(t, f.path("z"), strings.NewReader("not gzip"), http.Header{"Content-Encoding": {"gzip"}}), http.StatusBadRequest, "gzip")
	wantHTTPError(t, f.uploadRaw(t, f.path("z"), strings.NewReader("x"), http.Header{"X-Metadata-Owner": {"me"}}), http.StatusBadRequest, "metadata")
	wantHTTPError(t, f.uploadRaw(t, f.path("z"), strings.NewReader("x"), http.Header{"Content-Type": {"text/plain"}}), http.StatusBadRequest, "Content-Type")
	res, err := f.client.Post(f.filesURL(f.path("z")), "multipart/form-data", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	wantHTTPError(t, res, http.StatusBadRequest, "boundary")
	res, err = f.client.Post(f.filesURL(f.path("z")), "multipart/form-data; boundary=xyz", strings.NewReader("--xyz\r\nbroken"))
	if err != nil {
		t.Fatal(err)
	}
	wantHTTPError(t, res, http.StatusBadRequest, "reading the upload")
	if _, err := os.Stat(f.path("z")); !os.IsNotExist(err) {
		t.Errorf("a refused upload wrote z: %v", err)
	}
	noTemporaries(t, f.dir)

	// A sandbox that does not answer is the SDK's "sandbox is gone".
	f.exec.path = f.dir
	res, _ = f.client.Get(f.filesURL(f.path("file")))
	wantHTTPError(t, res, http.StatusBadGateway, "did not answer")
}

func TestFilesUploadTooLarge(t *testing.T) {
	f := startEnvd(t, "")
	f.h.files.maxUpload = 1 << 20
	big := bytes.Repeat([]byte("x"), 1<<20+1)
	// Declared too large: refused before anything runs.
	before := f.exec.count()
	wantHTTPError(t, f.uploadRaw(t, f.path("big"), bytes.NewReader(big), nil), http.StatusRequestEntityTooLarge, "larger than the 1048576 bytes")
	if f.exec.count() != before {
		t.Errorf("a declared-too-large upload ran %d execs", f.exec.count()-before)
	}
	// Streamed (no length) and over: cut, nothing left.
	wantHTTPError(t, f.uploadRaw(t, f.path("big"), io.MultiReader(bytes.NewReader(big)), nil), http.StatusRequestEntityTooLarge, "nothing was written")
	// A small gzip body that inflates past the budget.
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	_, _ = zw.Write(make([]byte, 4<<20))
	_ = zw.Close()
	wantHTTPError(t, f.uploadRaw(t, f.path("big"), &bomb, http.Header{"Content-Encoding": {"gzip"}}), http.StatusRequestEntityTooLarge, "larger than")
	// Many files that together are over.
	half := string(big[:600<<10])
	wantHTTPError(t, f.uploadParts(t, "", [][2]string{{f.path("one"), half}, {f.path("two"), half}}), http.StatusRequestEntityTooLarge, "larger than")
	if _, err := os.Stat(f.path("big")); !os.IsNotExist(err) {
		t.Errorf("a too-large upload left the file: %v", err)
	}
	if _, err := os.Stat(f.path("two")); !os.IsNotExist(err) {
		t.Errorf("the file past the budget was written: %v", err)
	}
	noTemporaries(t, f.dir)
}

// brokenBody sends some bytes, then fails: the client gave up mid-upload.
type brokenBody struct{ sent bool }

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.sent {
		time.Sleep(50 * time.Millisecond)
		return 0, errors.New("client went away")
	}
	b.sent = true
	return copy(p, bytes.Repeat([]byte("y"), 100<<10)), nil
}

func TestFilesUploadBrokenLeavesNothing(t *testing.T) {
	for shell, tools := range shells(t) {
		t.Run(shell, func(t *testing.T) {
			f := startEnvd(t, tools)
			p := f.path("victim")
			writeFiles(t, f.dir, "victim")
			req, _ := http.NewRequest(http.MethodPost, f.filesURL(p), &brokenBody{})
			req.Header.Set("Content-Type", "application/octet-stream")
			if res, err := f.client.Do(req); err == nil {
				res.Body.Close()
				t.Fatalf("a broken upload answered %d", res.StatusCode)
			}
			// The server notices, stops the exec and removes its temporary.
			deadline := time.Now().Add(10 * time.Second)
			for {
				entries, _ := os.ReadDir(f.dir)
				if len(entries) == 1 || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			noTemporaries(t, f.dir)
			if b, err := os.ReadFile(p); err != nil || string(b) != "victim" {
				t.Errorf("a broken upload changed the file: %q, %v", b, err)
			}
		})
	}
}
