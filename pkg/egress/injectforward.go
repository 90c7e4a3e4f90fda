package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// errResponseTooLarge cuts an answer over MaxResponseBody.
var errResponseTooLarge = errors.New("the response is over the proxy's limit")

// forwardRoute sends the request over conn (TLS to the API host) with the
// credential: every credential header the sandbox sent is dropped, and the
// hop-by-hop ones (ReverseProxy drops those). Answers stream through
// unbuffered (server-sent events), and the upstream request lives on the
// client's context: a client that goes away ends it.
func (p *Proxy) forwardRoute(w *countingWriter, r *http.Request, conn net.Conn, cred keys.Credential, rest string, d *decision) {
	defer func() { _ = conn.Close() }() // the transport's, once it took it; ours if it never did
	// A model may think for minutes before it answers a request that
	// does not stream.
	transport := oneConnTransport(conn, true, 10*time.Minute)
	defer transport.CloseIdleConnections()
	host, pod := d.target.Name, d.grant.Pod
	_, book := p.routeState()
	body := &countingBody{r: http.MaxBytesReader(w, r.Body, p.maxRequestBody())}
	if r.Body == nil || r.Body == http.NoBody {
		body = nil
	}
	var got *usageBody
	defer func() { // also when ReverseProxy aborts an answer cut short
		d.sent = body.count()
		if got != nil && got.over.Load() {
			d.cut = "the response went over the proxy's limit"
		}
		in, out, received := got.totals()
		book.add(pod, host, func(h *keys.HostUsage) {
			h.Requests++
			h.BytesSent += d.sent
			h.BytesGot += received
			h.InputTokens += in
			h.OutputTokens += out
		})
	}()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = &url.URL{Scheme: "https", Host: host, Path: rest, RawQuery: pr.In.URL.RawQuery}
			pr.Out.Host = host
			for _, h := range keys.CredentialHeaders {
				pr.Out.Header.Del(h)
			}
			pr.Out.Header.Del(cred.Header)
			pr.Out.Header.Del("Proxy-Connection")
			// No protocol switch: what would follow is no HTTP the
			// limits and the counts could read.
			pr.Out.Header.Del("Connection")
			pr.Out.Header.Del("Upgrade")
			// The transport asks for gzip itself and unpacks it, so the
			// token counts can be read; the sandbox gets the answer plain.
			pr.Out.Header.Del("Accept-Encoding")
			pr.Out.Header.Set(cred.Header, cred.Value())
			if body != nil {
				pr.Out.Body = body
			}
		},
		Transport:     transport,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if max := p.maxResponseBody(); resp.ContentLength > max {
				return fmt.Errorf("%w: %d bytes, the limit is %d", errResponseTooLarge, resp.ContentLength, max)
			}
			got = &usageBody{ReadCloser: resp.Body, max: p.maxResponseBody(), tokens: newTokenScanner(resp.Header.Get("Content-Type"))}
			resp.Body = got
			return nil
		},
		ErrorLog: slog.NewLogLogger(p.logger().Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			_ = conn.Close()
			status, why := http.StatusBadGateway, "the upstream request failed: "+err.Error()
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				status, why = http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over the proxy's limit of %d bytes", tooLarge.Limit)
			case errors.Is(err, errResponseTooLarge):
				why = err.Error()
			case errors.Is(err, context.Canceled):
				d.cut = "the client went away"
			}
			http.Error(w, "agentkernel egress proxy: "+why, status)
		},
	}
	rp.ServeHTTP(&stallingWriter{ResponseWriter: w, stall: orDefault(p.StallTimeout, 2*time.Minute)}, r)
}

// countingWriter notes the status and counts the body bytes of an answer.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// Unwrap lets ReverseProxy flush through the wrapper.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts the request body bytes sent upstream.
type countingBody struct {
	r io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.r.Close() }

func (b *countingBody) count() int64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}

// usageBody counts an answer's bytes, reads its token counts as they pass,
// and ends it with an error past max.
type usageBody struct {
	io.ReadCloser
	max    int64
	tokens *tokenScanner // nil: not an API answer it can read

	mu      sync.Mutex
	n       int64
	in, out int64
	done    bool
	over    atomic.Bool
}

func (b *usageBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n+int64(n) > b.max {
		n = int(max(0, b.max-b.n))
		b.over.Store(true)
		err = errResponseTooLarge
	}
	b.n += int64(n)
	if b.tokens != nil && n > 0 {
		b.tokens.Write(p[:n])
	}
	return n, err
}

func (b *usageBody) Close() error {
	b.mu.Lock()
	if !b.done && b.tokens != nil {
		b.in, b.out = b.tokens.finish()
	}
	b.done = true
	b.mu.Unlock()
	return b.ReadCloser.Close()
}

// totals are the tokens and bytes of the answer, once it was closed.
func (b *usageBody) totals() (in, out, n int64) {
	if b == nil {
		return 0, 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.in, b.out, b.n
}
