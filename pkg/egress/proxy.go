package egress

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
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

	// Keys is the model-key table the key routes read (route.go,
	// inject.go); nil: they refuse every request.
	Keys KeyTable
	// Self are the proxy's own addresses as sandboxes reach it ("ip:port"
	// of its Service), beyond a connection's local address: an
	// absolute-form request for one of them is for the proxy's routes.
	Self []string
	// UpstreamRootCAs verify the model APIs' certificates; nil: the
	// system's roots. Tests give their own.
	UpstreamRootCAs *x509.CertPool
	// MaxRequestBody and MaxResponseBody bound one key route request's
	// bodies (32 MiB and 256 MiB when 0); RequestsPerMinute bounds the key
	// route requests of one sandbox Pod (600 when 0, a minute's worth at
	// once).
	MaxRequestBody    int64
	MaxResponseBody   int64
	RequestsPerMinute int
	// Now is the clock of the rate limits; time.Now when nil.
	Now func() time.Time

	once      sync.Once
	limits    *connLimits
	routeOnce sync.Once
	rates     *podRates
	book      *usageBook
}

// routeState makes what the key routes keep per Pod, once.
func (p *Proxy) routeState() (*podRates, *usageBook) {
	p.routeOnce.Do(func() {
		perMinute := p.RequestsPerMinute
		if perMinute <= 0 {
			perMinute = 600
		}
		p.rates = newPodRates(perMinute)
		p.book = newUsageBook()
	})
	return p.rates, p.book
}

func (p *Proxy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
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
	// A key route's request: the body bytes sent, and why its answer
	// was cut short, if it was.
	sent int64
	cut  string
}

func (d *decision) deny(status int, format string, args ...any) *decision {
	d.status, d.reason = status, fmt.Sprintf(format, args...)
	return d
}

func (p *Proxy) record(d *decision, raw string) {
	attrs := d.attrs(raw)
	if d.status != 0 {
		attrs = append(attrs, "status", d.status, "reason", d.reason)
		p.logger().Info("deny", attrs...)
		return
	}
	p.logger().Info("allow", attrs...)
}

// attrs are what a decision's log line says of it, but its outcome; raw
// is the target as the client wrote it, when it was not one.
func (d *decision) attrs(raw string) []any {
	attrs := []any{"client", d.client.String(), "method", d.method}
	if d.grant.Pod != "" {
		attrs = append(attrs, whose(d.grant)...)
	}
	switch {
	case d.target.Port != 0:
		attrs = append(attrs, "target", d.target.String())
	case raw != "":
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
	return attrs
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Context().Value(countedKey{}) == nil {
		// Fail closed: without the counting listener there are no limits.
		p.logger().Error("the proxy is served on a listener that does not count connections: serve it on Proxy.Listener")
		http.Error(w, "agentkernel egress proxy: not configured to serve", http.StatusInternalServerError)
		return
	}

	if p.isRoute(r) {
		p.serveRoute(w, r)
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
		if d.grant.Sandbox == "" {
			return nil, d.deny(http.StatusForbidden, "%s is not among the hosts the members of pool %s may reach (kubectl agentkernel pool create --allow-host)", d.target, d.grant.Pool)
		}
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
