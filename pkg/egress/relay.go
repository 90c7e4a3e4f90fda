package egress

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
)

// tunnel answers a CONNECT and splices the two connections until both
// directions are done, the tunnel has been idle for TunnelIdleTimeout, or
// a peer stopped taking bytes for StallTimeout.
func (p *Proxy) tunnel(w http.ResponseWriter, upstream net.Conn) {
	defer func() { _ = upstream.Close() }()
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "agentkernel egress proxy: cannot take over the connection", http.StatusInternalServerError)
		return
	}
	// The client's connection is now ours to close (its slot comes back
	// when it is: countedConn), not the server's.
	client, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer func() { _ = client.Close() }()
	stall := orDefault(p.StallTimeout, 2*time.Minute)
	// The server's read deadlines were for the request head.
	_ = client.SetDeadline(time.Time{})
	_ = client.SetWriteDeadline(time.Now().Add(stall))
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	// A client may send its first bytes (a TLS ClientHello) right behind
	// the CONNECT, before the answer: they are in the server's buffer.
	var fromClient io.Reader = client
	if n := rw.Reader.Buffered(); n > 0 {
		buffered, _ := rw.Peek(n)
		fromClient = io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), client)
	}
	idle := newIdleWatch(orDefault(p.TunnelIdleTimeout, 15*time.Minute), func() {
		_ = client.Close()
		_ = upstream.Close()
	})
	defer idle.stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pipe(upstream, fromClient, stall, idle.touch) }()
	go func() {
		defer wg.Done()
		pipe(client, upstream, stall, idle.touch)
		// The far end is done: a client that keeps its end open without
		// sending gets a while to finish, not a slot held for ever.
		_ = client.SetReadDeadline(time.Now().Add(lingerAfterUpstreamClosed))
	}()
	wg.Wait()
}

// lingerAfterUpstreamClosed is how long a tunnel whose upstream has closed
// waits for the client's last bytes.
const lingerAfterUpstreamClosed = 30 * time.Second

// tunnelBuffer is each direction's copy buffer: small, because every open
// tunnel holds two (1024 tunnels hold 32 MiB).
const tunnelBuffer = 16 << 10

// pipe copies until src ends, then half-closes dst so its peer sees the
// end too (a TLS close_notify, an HTTP/1.0 body). Each write must make
// progress within stall; every byte moved counts as activity.
func pipe(dst net.Conn, src io.Reader, stall time.Duration, active func()) {
	buf := make([]byte, tunnelBuffer)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			active()
			_ = dst.SetWriteDeadline(time.Now().Add(stall))
			if _, err := dst.Write(buf[:n]); err != nil {
				_ = dst.Close()
				return
			}
			active()
		}
		if rerr != nil {
			break
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
		_ = dst.Close()
	}
}

// idleWatch calls onIdle once no activity was seen for d. One timer per
// tunnel, no goroutine: it is re-armed for the time left when it fires
// early.
type idleWatch struct {
	d       time.Duration
	last    atomic.Int64 // unix nanoseconds of the last activity
	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
	onIdle  func()
}

func newIdleWatch(d time.Duration, onIdle func()) *idleWatch {
	w := &idleWatch{d: d, onIdle: onIdle}
	w.touch()
	w.mu.Lock()
	w.timer = time.AfterFunc(d, w.check)
	w.mu.Unlock()
	return w
}

func (w *idleWatch) touch() { w.last.Store(time.Now().UnixNano()) }

func (w *idleWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if left := w.d - time.Since(time.Unix(0, w.last.Load())); left > 0 {
		w.timer.Reset(left)
		return
	}
	w.onIdle()
}

func (w *idleWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.timer.Stop()
}

// forward sends a plain HTTP request over conn, a connection already made
// to a checked address of target. The request goes out with the target as
// its Host, whatever Host header the client sent: a server at an allowed
// address is never asked for another site. No X-Forwarded-For: the
// sandbox's address stays inside the cluster.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, conn net.Conn, target hosts.Target) {
	defer func() { _ = conn.Close() }() // the transport's, once it took it; ours if it never did
	transport := oneConnTransport(conn, false, 2*time.Minute)
	defer transport.CloseIdleConnections()
	host := target.Host()
	if target.Addr.Is6() {
		host = "[" + host + "]"
	}
	if target.Port != 80 {
		host += ":" + strconv.Itoa(int(target.Port))
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := *pr.In.URL
			u.Host = host
			pr.Out.URL = &u
			pr.Out.Host = ""
			pr.Out.Header.Del("Proxy-Authorization")
			pr.Out.Header.Del("Proxy-Connection")
		},
		Transport: transport,
		ErrorLog:  slog.NewLogLogger(p.logger().Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			_ = conn.Close()
			http.Error(w, "agentkernel egress proxy: the upstream request failed: "+err.Error(), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(&stallingWriter{ResponseWriter: w, stall: orDefault(p.StallTimeout, 2*time.Minute)}, r)
}

// oneConnTransport sends one request over conn, a connection the proxy
// made to a checked address (a TLS one when isTLS), and dials nothing.
func oneConnTransport(conn net.Conn, isTLS bool, headerTimeout time.Duration) *http.Transport {
	var used sync.Once
	dial := func(context.Context, string, string) (net.Conn, error) {
		var c net.Conn
		used.Do(func() { c = conn })
		if c == nil {
			return nil, errors.New("one connection per request")
		}
		return c, nil
	}
	t := &http.Transport{
		Proxy:                  nil,
		DisableKeepAlives:      true,
		ResponseHeaderTimeout:  headerTimeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	if isTLS {
		t.DialTLSContext = dial
	} else {
		t.DialContext = dial
	}
	return t
}

// stallingWriter gives each write of a response StallTimeout to make
// progress: a client that asks for a large response and never reads it
// does not hold its connection for ever.
type stallingWriter struct {
	http.ResponseWriter
	stall time.Duration
}

func (w *stallingWriter) Write(b []byte) (int, error) {
	_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.stall))
	return w.ResponseWriter.Write(b)
}

// Unwrap lets ReverseProxy flush through the wrapper.
func (w *stallingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
