package envd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"sync"
)

// downloadScript streams the file $1: after its checks it prints a header
// line "K<size>\n" (size empty when the image has no stat), then the
// bytes. The header is what lets the HTTP status wait for the checks while
// the body still streams: nothing before it means the script failed, and
// its exit status says how.
const downloadScript = `[ -d "$1" ] && exit 21
[ -e "$1" ] || exit 66
[ -r "$1" ] || exit 13
exec 3<"$1" || exit 13
printf 'K%s\n' "$(stat -L -c %s -- "$1" 2>/dev/null)"
exec cat <&3`

var errDownloadEnded = errors.New("the download ended")

// maxDownloadHeader bounds the header line: "K", 19 digits, newline.
const maxDownloadHeader = 32

// download is GET /files: the file's bytes, streamed through the exec's
// stdout and never held whole. The size stat reported is the
// Content-Length, and exactly that many bytes are sent: a file that grows
// meanwhile is cut where it stood, one that shrinks ends the response
// short, which the client sees as the broken download it is.
func (s *filesystemService) download(w http.ResponseWriter, r *http.Request) {
	p, err := resolvePath(r.URL.Query().Get("path"))
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan scriptResult, 1)
	go func() {
		res := runScript(ctx, downloadScript, []string{p}, nil, pw)
		pw.CloseWithError(io.EOF)
		done <- res
	}()
	result := sync.OnceValue(func() scriptResult { return <-done })
	// Leaving, the exec ends and its goroutine with it.
	defer func() { cancel(); _ = pr.CloseWithError(errDownloadEnded); result() }()

	br := bufio.NewReaderSize(pr, 32<<10)
	header, err := br.ReadSlice('\n')
	if err != nil {
		_ = pr.CloseWithError(errDownloadEnded)
		downloadError(w, result(), p)
		return
	}
	size, ok := parseDownloadHeader(header)
	if !ok {
		writeHTTPError(w, http.StatusInternalServerError, "reading "+quoted(p)+": the sandbox's answer is malformed")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if cd := mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(p)}); cd != "" {
		h.Set("Content-Disposition", cd)
	}
	var body io.Reader = br
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		body = io.LimitReader(br, size)
	}
	w.WriteHeader(http.StatusOK)
	// An error here is the client leaving or the stream breaking after
	// the status went out: nothing more can be said to the client.
	_, _ = io.Copy(w, body)
}

// parseDownloadHeader reads downloadScript's "K<size>\n": the size, or -1
// when the sandbox has no stat.
func parseDownloadHeader(h []byte) (int64, bool) {
	if len(h) < 2 || len(h) > maxDownloadHeader || h[0] != 'K' || h[len(h)-1] != '\n' {
		return 0, false
	}
	digits := string(h[1 : len(h)-1])
	if digits == "" {
		return -1, true
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != digits {
		return 0, false
	}
	return n, true
}

// downloadError answers a download whose script sent no header.
func downloadError(w http.ResponseWriter, res scriptResult, p string) {
	switch {
	case res.exited && res.code == exitNotFound:
		writeHTTPError(w, http.StatusNotFound, "path "+quoted(p)+" does not exist")
	case res.exited && res.code == exitIsDirectory:
		writeHTTPError(w, http.StatusBadRequest, "path "+quoted(p)+" is a directory")
	case res.exited && res.code == exitAccess:
		writeHTTPError(w, http.StatusInternalServerError, "error opening file "+quoted(p)+": permission denied")
	case res.ok():
		writeHTTPError(w, http.StatusInternalServerError, "reading "+quoted(p)+": the sandbox's answer is malformed")
	default:
		writeHTTPError(w, res.httpStatus(), res.httpMessage("reading "+quoted(p)))
	}
}
