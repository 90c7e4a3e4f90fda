package envd

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// uploadScript writes one uploaded file. $1 = the file, $2 = the
// temporary name beside it, $3 = the size, $4 = what to do:
//
//	write   copy stdin into the temporary file (the size is not known yet)
//	commit  check that the temporary file has $3 bytes and rename it onto the file
//	both    copy exactly $3 bytes of stdin, then commit
//
// The rename is what makes an upload all or nothing: a stream that breaks
// leaves a temporary file with fewer bytes than the server sent, which
// commit refuses (and the server removes), never a half-written file. An
// overwritten file keeps its permissions (envd truncates it in place); a
// hard link to it, or a symlink at its path, is replaced rather than
// written through.
const uploadScript = `f=$1 t=$2 n=$3
case $4 in write|both)
	[ -d "$f" ] && exit 21
	d=${f%/*}
	[ -z "$d" ] || mkdir -p -- "$d" || exit 1
	# Not exec: the shell holds the exec's stdout while cat copies, as a
	# CRI exec whose stdout ends cuts its stdin (containerd#13934).
	[ "$4" = write ] && { cat >"$t"; exit; }
	head -c "$n" >"$t" || { rm -f -- "$t"; exit 1; }
esac
s=$(stat -c %s -- "$t" 2>/dev/null) || s=$(wc -c <"$t") || exit 1
[ "$s" -eq "$n" ] || { rm -f -- "$t"; exit 75; }
if [ -f "$f" ] && m=$(stat -L -c %a -- "$f" 2>/dev/null); then chmod -- "$m" "$t" 2>/dev/null; fi
mv -f -- "$t" "$f" || { rm -f -- "$t"; exit 1; }`

// uploadTempPrefix begins the name of an upload's temporary file.
const uploadTempPrefix = ".ak-upload-"

// exitShort: the temporary file has fewer bytes than were sent.
const exitShort = 75

// cleanupTimeout bounds the exec that removes a failed upload's
// temporary file, which runs after the request has ended.
const cleanupTimeout = 30 * time.Second

// writeInfo is the spec's EntryInfo of /files.
type writeInfo struct {
	Path string `json:"path"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// uploadFailure is an upload's error as /files answers it.
type uploadFailure struct {
	code    int
	message string
}

// errUploadTooLarge: the request carried more than its budget.
var errUploadTooLarge = errors.New("upload too large")

// upload is POST /files: multipart/form-data (one or many "file" parts, as
// the SDK sends them) or application/octet-stream (one file at ?path=,
// gzip allowed), each streamed into the sandbox through an exec's stdin.
func (s *filesystemService) upload(w http.ResponseWriter, r *http.Request) {
	infos, fail := s.receive(w, r)
	if fail != nil {
		writeHTTPError(w, fail.code, fail.message)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(infos)
}

func (s *filesystemService) receive(w http.ResponseWriter, r *http.Request) ([]writeInfo, *uploadFailure) {
	for k := range r.Header {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), "X-Metadata-") {
			return nil, &uploadFailure{http.StatusBadRequest, "file metadata is not supported here: agentkernel's sandboxes keep no extended attributes; upload without metadata"}
		}
	}
	queryPath := r.URL.Query().Get("path")
	budget := &uploadBudget{left: s.maxUpload, max: s.maxUpload}
	// Multipart framing and parts other than "file" count too, with room
	// for the framing of many files.
	r.Body = http.MaxBytesReader(w, r.Body, s.maxUpload+1<<20)
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, &uploadFailure{http.StatusBadRequest, "the upload's Content-Type is missing or malformed; send multipart/form-data or application/octet-stream"}
	}
	encoding := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch mediaType {
	case "application/octet-stream":
		dest, err := resolvePath(queryPath)
		if err != nil {
			return nil, &uploadFailure{http.StatusBadRequest, err.Error() + " (an application/octet-stream upload names its file with ?path=)"}
		}
		body, size := io.Reader(r.Body), r.ContentLength
		switch encoding {
		case "", "identity":
		case "gzip":
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				return nil, &uploadFailure{http.StatusBadRequest, "the upload's gzip stream is malformed: " + err.Error()}
			}
			body, size = zr, -1
		default:
			return nil, &uploadFailure{http.StatusBadRequest, "unsupported Content-Encoding " + strconv.Quote(encoding) + "; send gzip or none"}
		}
		if size > s.maxUpload {
			return nil, budget.tooLarge()
		}
		info, fail := s.writeFile(r.Context(), dest, body, size, budget)
		if fail != nil {
			return nil, fail
		}
		return []writeInfo{info}, nil
	case "multipart/form-data":
		if encoding != "" && encoding != "identity" {
			return nil, &uploadFailure{http.StatusBadRequest, "a multipart upload cannot be Content-Encoded; gzip uploads are application/octet-stream"}
		}
		if params["boundary"] == "" {
			return nil, &uploadFailure{http.StatusBadRequest, "the multipart upload has no boundary"}
		}
		return s.receiveParts(r.Context(), multipart.NewReader(r.Body, params["boundary"]), queryPath, budget)
	}
	return nil, &uploadFailure{http.StatusBadRequest, "unsupported Content-Type " + strconv.Quote(mediaType) + "; send multipart/form-data or application/octet-stream"}
}

// receiveParts writes every "file" part: to ?path= when given (then only
// one file may come), else to the part's file name.
func (s *filesystemService) receiveParts(ctx context.Context, mr *multipart.Reader, queryPath string, budget *uploadBudget) ([]writeInfo, *uploadFailure) {
	var infos []writeInfo
	for {
		// Raw: a part's bytes are the file's, whatever transfer encoding
		// it claims.
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bodyFailure(err, budget)
		}
		if part.FormName() != "file" {
			if _, err := io.Copy(io.Discard, part); err != nil {
				return nil, bodyFailure(err, budget)
			}
			continue
		}
		name := queryPath
		if name == "" {
			name = rawFileName(part)
		} else if len(infos) > 0 {
			return nil, &uploadFailure{http.StatusBadRequest, "several files were sent to one ?path=; leave path out and name each part's file instead"}
		}
		dest, err := resolvePath(name)
		if err != nil {
			return nil, &uploadFailure{http.StatusBadRequest, err.Error() + " (a multipart upload names its file with ?path= or the part's filename)"}
		}
		info, fail := s.writeFile(ctx, dest, part, -1, budget)
		if fail != nil {
			return nil, fail
		}
		infos = append(infos, info)
	}
	if len(infos) == 0 {
		return nil, &uploadFailure{http.StatusBadRequest, `the multipart upload has no "file" part`}
	}
	return infos, nil
}

// rawFileName is a part's filename as sent. (multipart.Part.FileName
// keeps only the last element, and the SDK sends whole paths.)
func rawFileName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

// writeFile streams body (size bytes, or -1 when unknown) into dest in the
// request's sandbox, through a temporary name that only a whole upload
// renames onto dest.
func (s *filesystemService) writeFile(ctx context.Context, dest string, body io.Reader, size int64, budget *uploadBudget) (writeInfo, *uploadFailure) {
	if dest == "/" {
		return writeInfo{}, &uploadFailure{http.StatusBadRequest, "path '/' is a directory"}
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	tmp := path.Join(path.Dir(dest), uploadTempPrefix+hex.EncodeToString(nonce[:]))
	mode := "write"
	if size >= 0 {
		mode = "both"
	}
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan scriptResult, 1)
	go func() {
		res := runScript(streamCtx, uploadScript, []string{dest, tmp, strconv.FormatInt(max(size, 0), 10), mode}, pr, nil)
		_ = pr.CloseWithError(errExecEnded)
		done <- res
	}()
	n, copyErr := budget.copy(pw, body)
	if copyErr == nil && size >= 0 && n != size {
		copyErr = fmt.Errorf("the request body ended after %d of its %d bytes", n, size)
	}
	if copyErr != nil && !errors.Is(copyErr, errExecEnded) {
		cancel()
		_ = pw.CloseWithError(copyErr)
		<-done
		s.removeTemp(ctx, tmp)
		return writeInfo{}, bodyFailure(copyErr, budget)
	}
	_ = pw.Close()
	res := <-done
	if res.ok() && mode == "write" {
		if copyErr != nil {
			// The sandbox stopped reading before the body ended: what it
			// has is not the file.
			res = scriptResult{exited: true, code: exitShort}
		} else {
			res = runScript(ctx, uploadScript, []string{dest, tmp, strconv.FormatInt(n, 10), "commit"}, nil, nil)
		}
	}
	if !res.ok() {
		if !res.exited || res.code != exitShort {
			s.removeTemp(ctx, tmp)
		}
		return writeInfo{}, writeFailure(res, dest)
	}
	return writeInfo{Path: dest, Name: path.Base(dest), Type: "file"}, nil
}

// errExecEnded: the exec ended before the upload's body did.
var errExecEnded = errors.New("the sandbox's side of the upload ended")

// removeTemp removes a failed upload's temporary file, after the request
// if need be; a sandbox that is gone keeps it (a dot file beside the
// target, named .ak-upload-*).
func (s *filesystemService) removeTemp(ctx context.Context, tmp string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	runScript(ctx, `exec rm -f -- "$1"`, []string{tmp}, nil, nil)
}

func writeFailure(res scriptResult, dest string) *uploadFailure {
	switch {
	case res.exited && res.code == exitIsDirectory:
		return &uploadFailure{http.StatusBadRequest, "path " + quoted(dest) + " is a directory"}
	case res.exited && res.code == exitShort:
		return &uploadFailure{http.StatusBadGateway, "writing " + quoted(dest) + ": the sandbox received fewer bytes than were sent; nothing was written"}
	case res.exited && strings.Contains(res.stderr, "No space left"):
		return &uploadFailure{http.StatusInsufficientStorage, "not enough disk space available for " + quoted(dest)}
	}
	return &uploadFailure{res.httpStatus(), res.httpMessage("writing " + quoted(dest))}
}

// bodyFailure is an upload whose request body could not be read whole.
func bodyFailure(err error, budget *uploadBudget) *uploadFailure {
	var tooBig *http.MaxBytesError
	if errors.Is(err, errUploadTooLarge) || errors.As(err, &tooBig) {
		return budget.tooLarge()
	}
	return &uploadFailure{http.StatusBadRequest, "reading the upload failed: " + err.Error() + "; nothing was written"}
}

// uploadBudget is what is left of one request's MaxUploadBytes.
type uploadBudget struct{ left, max int64 }

func (b *uploadBudget) tooLarge() *uploadFailure {
	return &uploadFailure{http.StatusRequestEntityTooLarge, fmt.Sprintf("the upload is larger than the %d bytes one request may write; send the files in several requests (nothing was written)", b.max)}
}

// copy copies src into dst, failing with errUploadTooLarge past the
// budget; a write error (the exec ended) is errExecEnded.
func (b *uploadBudget) copy(dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			if int64(k) > b.left {
				return n, errUploadTooLarge
			}
			b.left -= int64(k)
			if _, err := dst.Write(buf[:k]); err != nil {
				return n, errExecEnded
			}
			n += int64(k)
		}
		if errors.Is(rerr, io.EOF) {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
