package egress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// Resolver looks names up; *net.Resolver is one. Tests give their own, so
// "a name that resolves to a private address" needs no real DNS.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Proxy is an HTTP proxy for sandboxes: CONNECT tunnels (HTTPS and
// anything else over TCP) and plain HTTP requests in absolute form, each
// only to a host the requesting sandbox was granted. The sandbox is known
// by its Pod's address, never by anything it says. Names are resolved here,
// every address is checked (hosts.Permitted) and the checked address is the
// one dialled: a name that resolves to a public address when checked and a
// private one a moment later (DNS rebinding) never reaches the private one.
type Proxy struct {
	Grants   Grants
	Resolver Resolver // net.DefaultResolver when nil
	// Dial connects to a checked address ("ip:port"). When nil, a
	// net.Dialer that checks the address once more at connect time.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Private are the private ranges the namespace's admin opened.
	Private []netip.Prefix
	// Log gets one JSON line per decision.
	Log *slog.Logger

	DialTimeout    time.Duration // 10s when 0
	ResolveTimeout time.Duration // 5s when 0
	// MaxConns bounds the client connections open at once (1024 when 0),
	// MaxConnsPerClient those of one client address (128 when 0). They are
	// counted as they are accepted (Listener), not when a request arrives:
	// a sandbox that opens connections without end, finished or not, runs
	// out, not the proxy and not the other sandboxes.
	MaxConns          int
	MaxConnsPerClient int
	// HeaderTimeout is how long a client has, in all, to send a request
	// head (10s when 0): a head sent a byte at a time does not hold its
	// connection longer.
	HeaderTimeout time.Duration
	// TunnelIdleTimeout closes a tunnel in which no byte moved either way
	// for that long (15m when 0: a model API may think for minutes before
	// it answers).
	TunnelIdleTimeout time.Duration
	// StallTimeout closes a connection the proxy has been writing to for
	// that long without the peer taking a byte (2m when 0): a client that
	// opens a tunnel and never reads holds neither its slot nor the
	// proxy's buffers for ever.
	StallTimeout time.Duration

	once   sync.Once
	limits *connLimits
}

func (p *Proxy) connLimits() *connLimits {
	p.once.Do(func() { p.limits = newConnLimits(p.MaxConns, p.MaxConnsPerClient) })
	return p.limits
}

// Listener wraps ln so that the proxy's connection limits hold from the
// moment a connection is accepted; serve Server on it. A connection over a
// limit is answered 503 and closed, and never reaches the HTTP server.
func (p *Proxy) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, limits: p.connLimits(), log: p.logger()}
}

// OpenConns says how many client connections are open, in all and per
// client address.
func (p *Proxy) OpenConns() (int, map[netip.Addr]int) {
	return p.connLimits().counts()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Server returns an http.Server for the proxy with limits on what a client
// may send before it is answered.
func (p *Proxy) Server() *http.Server {
	return &http.Server{
		Handler: p,
		// An absolute deadline for the whole head, however slowly it
		// comes.
		ReadHeaderTimeout: orDefault(p.HeaderTimeout, 10*time.Second),
		IdleTimeout:       90 * time.Second,
		// A proxy's requests have small heads; a held connection's cost
		// is bounded by what it may send before it is answered.
		MaxHeaderBytes:               16 << 10,
		ConnContext:                  markCounted,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(p.logger().Handler(), slog.LevelWarn),
	}
}

func (p *Proxy) logger() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// decision is one request's outcome, logged as one line.
type decision struct {
	client  netip.Addr
	grant   Grant
	method  string
	target  hosts.Target
	rule    hosts.Rule
	addr    netip.AddrPort // dialled
	dropped []string       // resolved addresses refused, with why
	status  int            // 0 while allowed
	reason  string
}

func (d *decision) deny(status int, format string, args ...any) *decision {
	d.status, d.reason = status, fmt.Sprintf(format, args...)
	return d
}

func (p *Proxy) record(d *decision, raw string) {
	attrs := []any{"client", d.client.String(), "method", d.method}
	if d.grant.Sandbox != "" {
		attrs = append(attrs, "sandbox", d.grant.Sandbox, "pod", d.grant.Pod)
	}
	if d.target.Port != 0 {
		attrs = append(attrs, "target", d.target.String())
	} else {
		attrs = append(attrs, "target_raw", untrusted.Truncate(raw, 256))
	}
	if d.rule.Port != 0 {
		attrs = append(attrs, "rule", d.rule.String())
	}
	if d.addr.IsValid() {
		attrs = append(attrs, "addr", d.addr.String())
	}
	if len(d.dropped) > 0 {
		attrs = append(attrs, "refused_addrs", d.dropped)
	}
	if d.status != 0 {
		attrs = append(attrs, "status", d.status, "reason", d.reason)
		p.logger().Info("deny", attrs...)
		return
	}
	p.logger().Info("allow", attrs...)
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Context().Value(countedKey{}) == nil {
		// Fail closed: without the counting listener there are no limits.
		p.logger().Error("the proxy is served on a listener that does not count connections: serve it on Proxy.Listener")
		http.Error(w, "agentkernel egress proxy: not configured to serve", http.StatusInternalServerError)
		return
	}

	d := &decision{method: r.Method}
	// Only the authority is ever logged: a path or query may hold a token.
	raw := r.Host
	if r.Method != http.MethodConnect && r.URL.Host != "" {
		raw = r.URL.Host
	}
	// net/http cancels a request's context when the client half-closes,
	// as clients that send their whole request at once may (nc does):
	// that is no reason to stop. Resolving and dialling have timeouts of
	// their own, and a client that really left makes the copy fail. (A
	// context that can be done, or ReverseProxy watches CloseNotify.)
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	conn, d := p.decide(ctx, r, d)
	p.record(d, raw)
	if d.status != 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
		w.WriteHeader(d.status)
		fmt.Fprintf(w, "agentkernel egress proxy: %s\n", d.reason)
		return
	}
	if r.Method == http.MethodConnect {
		p.tunnel(w, conn)
		return
	}
	p.forward(w, r.WithContext(ctx), conn, d.target)
}

// decide checks everything and, when the request is allowed, returns a
// connection to a checked address of the target.
func (p *Proxy) decide(ctx context.Context, r *http.Request, d *decision) (net.Conn, *decision) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return nil, d.deny(http.StatusForbidden, "cannot tell the client's address")
	}
	d.client = ap.Addr().Unmap()

	switch {
	case r.Method == http.MethodConnect:
		d.target, err = hosts.ParseAuthority(r.Host, 0)
	case r.URL.Scheme == "http" && r.URL.Host != "" && r.URL.User == nil && r.URL.Opaque == "":
		d.target, err = hosts.ParseAuthority(r.URL.Host, 80)
	case r.URL.Scheme == "https":
		return nil, d.deny(http.StatusBadRequest, "for https:// use CONNECT (set HTTPS_PROXY), the proxy never sees inside TLS")
	default:
		return nil, d.deny(http.StatusBadRequest, "this is an HTTP proxy: send CONNECT host:port, or a request for an absolute http:// URL")
	}
	if err != nil {
		return nil, d.deny(http.StatusBadRequest, "bad target: %v", err)
	}
	if d.grant, err = p.Grants.Lookup(d.client); err != nil {
		return nil, d.deny(http.StatusForbidden, "%s has no egress grants: %v", d.client, err)
	}
	rule, ok := hosts.Match(d.grant.Rules, d.target)
	if !ok {
		return nil, d.deny(http.StatusForbidden, "%s is not among the hosts sandbox %s may reach (kubectl agentkernel create --allow-host)", d.target, d.grant.Sandbox)
	}
	d.rule = rule

	addrs, err := p.addresses(ctx, d)
	if err != nil {
		return nil, d.deny(http.StatusBadGateway, "%v", err)
	}
	if len(addrs) == 0 {
		return nil, d.deny(http.StatusForbidden, "%s has no address the proxy may connect to (%v)", d.target.Host(), d.dropped)
	}
	conn, err := p.dialFirst(ctx, d, addrs)
	if err != nil {
		return nil, d.deny(http.StatusBadGateway, "cannot connect to %s: %v", d.target, err)
	}
	return conn, d
}

// addresses resolves the target (an IP literal is its own address) and
// keeps the addresses the proxy may dial.
func (p *Proxy) addresses(ctx context.Context, d *decision) ([]netip.Addr, error) {
	var found []netip.Addr
	if d.target.Name == "" {
		found = []netip.Addr{d.target.Addr}
	} else {
		timeout := p.ResolveTimeout
		if timeout == 0 {
			timeout = 5 * time.Second
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res := p.Resolver
		if res == nil {
			res = net.DefaultResolver
		}
		// The resolver of the proxy's Pod: /etc/hosts first (hostAliases
		// an admin set), then DNS. The Pod's ndots:1 (objects.go) makes a
		// dotted name absolute first, so a cluster search domain is tried
		// only for a name the public DNS does not know — and whatever that
		// finds is private, refused unless the admin opened its range.
		var err error
		if found, err = res.LookupNetIP(rctx, "ip", d.target.Name); err != nil {
			return nil, fmt.Errorf("cannot resolve %s: %v", d.target.Name, err)
		}
	}
	var ok []netip.Addr
	for _, a := range found {
		a = a.Unmap()
		if allowed, why := hosts.Permitted(a, p.Private); allowed {
			ok = append(ok, a)
		} else {
			d.dropped = append(d.dropped, a.String()+" ("+why+")")
		}
	}
	return ok, nil
}

func (p *Proxy) dialFirst(ctx context.Context, d *decision, addrs []netip.Addr) (net.Conn, error) {
	timeout := p.DialTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	dial := p.Dial
	if dial == nil {
		dial = p.checkingDialer(timeout).DialContext
	}
	var errs []error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, d.target.Port)
		dctx, cancel := context.WithTimeout(ctx, timeout)
		conn, err := dial(dctx, "tcp", ap.String())
		cancel()
		if err == nil {
			d.addr = ap
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// checkingDialer checks, as the socket connects, that the address is one
// the proxy may dial: whatever path an address took to get here, nothing
// else is ever connected to.
func (p *Proxy) checkingDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("refusing to dial %q: not an address", address)
			}
			if ok, why := hosts.Permitted(ap.Addr(), p.Private); !ok {
				return fmt.Errorf("refusing to dial %s: %s", ap.Addr(), why)
			}
			return nil
		},
	}
}

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
	var used sync.Once
	transport := &http.Transport{
		Proxy: nil,
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			var c net.Conn
			used.Do(func() { c = conn })
			if c == nil {
				return nil, errors.New("one connection per request")
			}
			return c, nil
		},
		DisableKeepAlives:      true,
		ResponseHeaderTimeout:  2 * time.Minute,
		MaxResponseHeaderBytes: 64 << 10,
	}
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
