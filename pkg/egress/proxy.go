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
	"syscall"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
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
	// MaxConns bounds the requests and tunnels open at once (1024 when
	// 0), MaxConnsPerClient those of one client address (128 when 0): a
	// sandbox that opens connections without end runs out, not the proxy
	// and not the other sandboxes.
	MaxConns          int
	MaxConnsPerClient int

	once      sync.Once
	slots     chan struct{}
	mu        sync.Mutex
	perClient map[netip.Addr]int
}

// acquire takes a slot for a client, or says which limit it hit.
func (p *Proxy) acquire(client netip.Addr) (release func(), full string) {
	p.once.Do(func() {
		n := p.MaxConns
		if n <= 0 {
			n = 1024
		}
		p.slots = make(chan struct{}, n)
		p.perClient = map[netip.Addr]int{}
	})
	limit := p.MaxConnsPerClient
	if limit <= 0 {
		limit = 128
	}
	p.mu.Lock()
	if p.perClient[client] >= limit {
		p.mu.Unlock()
		return nil, fmt.Sprintf("%s has %d connections open through the proxy, its limit", client, limit)
	}
	p.perClient[client]++
	p.mu.Unlock()
	put := func() {
		p.mu.Lock()
		if p.perClient[client]--; p.perClient[client] <= 0 {
			delete(p.perClient, client)
		}
		p.mu.Unlock()
	}
	select {
	case p.slots <- struct{}{}:
		return func() { <-p.slots; put() }, ""
	default:
		put()
		return nil, "too many connections through the proxy at once"
	}
}

// Server returns an http.Server for the proxy with limits on what a client
// may send before it is answered.
func (p *Proxy) Server() *http.Server {
	return &http.Server{
		Handler:                      p,
		ReadHeaderTimeout:            10 * time.Second,
		IdleTimeout:                  90 * time.Second,
		MaxHeaderBytes:               32 << 10,
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
		attrs = append(attrs, "target_raw", truncate(raw, 256))
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var client netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		client = ap.Addr().Unmap()
	}
	release, full := p.acquire(client)
	if release == nil {
		p.logger().Info("deny", "client", client.String(), "method", r.Method, "status", http.StatusServiceUnavailable, "reason", full)
		http.Error(w, "agentkernel egress proxy: "+full, http.StatusServiceUnavailable)
		return
	}
	defer release()

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
// directions are done.
func (p *Proxy) tunnel(w http.ResponseWriter, upstream net.Conn) {
	defer func() { _ = upstream.Close() }()
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "agentkernel egress proxy: cannot take over the connection", http.StatusInternalServerError)
		return
	}
	client, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer func() { _ = client.Close() }()
	// The server's read deadlines were for the request head.
	_ = client.SetDeadline(time.Time{})
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
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copyAndClose(upstream, fromClient) }()
	go func() {
		defer wg.Done()
		copyAndClose(client, upstream)
		// The far end is done: a client that keeps its end open without
		// sending gets a while to finish, not a slot held for ever.
		_ = client.SetReadDeadline(time.Now().Add(lingerAfterUpstreamClosed))
	}()
	wg.Wait()
}

// lingerAfterUpstreamClosed is how long a tunnel whose upstream has closed
// waits for the client's last bytes.
const lingerAfterUpstreamClosed = 30 * time.Second

// copyAndClose copies until src ends, then half-closes dst so its peer sees
// the end too (a TLS close_notify, an HTTP/1.0 body).
func copyAndClose(dst net.Conn, src io.Reader) {
	_, _ = io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
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
	rp.ServeHTTP(w, r)
}
