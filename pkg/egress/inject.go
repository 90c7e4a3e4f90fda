package egress

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// A key route (keys.RoutePrefix): the sandbox sends its API request to
// the proxy in plain HTTP, with a placeholder for a key; the proxy sends
// it on over TLS to the API host the route names, with the sandbox's key
// from the key table. The key never enters the sandbox, and goes only to
// the host and paths its Injection names, only for the Pod whose grant
// the table's row carries.

// The key routes' body limits when the Proxy sets none.
const (
	defaultMaxRequestBody  = 32 << 20
	defaultMaxResponseBody = 256 << 20
)

func (p *Proxy) maxRequestBody() int64  { return positiveOr(p.MaxRequestBody, defaultMaxRequestBody) }
func (p *Proxy) maxResponseBody() int64 { return positiveOr(p.MaxResponseBody, defaultMaxResponseBody) }

func positiveOr(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

// serveRoute decides, forwards, and logs one line when the answer is done
// (also when it was cut short).
func (p *Proxy) serveRoute(w http.ResponseWriter, r *http.Request) {
	d := &decision{method: r.Method}
	rw := &countingWriter{ResponseWriter: w}
	defer func() { p.recordRoute(d, rw) }()
	conn, cred, rest := p.decideRoute(r, d)
	if d.status != 0 {
		if d.grant.Pod != "" && d.target.Name != "" {
			_, book := p.routeState()
			book.add(d.grant.Pod, d.target.Name, func(h *keys.HostUsage) { h.Refused++ })
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(d.status)
		fmt.Fprintf(w, "agentkernel egress proxy: %s\n", d.reason)
		return
	}
	p.forwardRoute(rw, r, conn, cred, rest, d)
}

// decideRoute checks everything, in the order a sandbox can least learn
// from, and when the request may go returns a TLS connection to a checked
// address of the API host, the credential and the path to send.
func (p *Proxy) decideRoute(r *http.Request, d *decision) (net.Conn, keys.Credential, string) {
	var none keys.Credential
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		d.deny(http.StatusForbidden, "cannot tell the client's address")
		return nil, none, ""
	}
	d.client = ap.Addr().Unmap()
	host, rest, err := routePath(r.URL)
	if err != nil {
		d.deny(http.StatusBadRequest, "%v", err)
		return nil, none, ""
	}
	d.target = hosts.Target{Name: host, Port: 443}
	if d.grant, err = p.Grants.Lookup(d.client); err != nil {
		d.deny(http.StatusForbidden, "%s has no egress grants: %v", d.client, err)
		return nil, none, ""
	}
	cred, why := p.credentialFor(d.grant, host, rest)
	if why != "" {
		d.deny(http.StatusForbidden, "%s", why)
		return nil, none, ""
	}
	rates, _ := p.routeState()
	if !rates.allow(d.grant.Pod, p.now()) {
		d.deny(http.StatusTooManyRequests, "pod %s sent more than %d requests a minute through the proxy's key routes: wait, and send fewer", d.grant.Pod, int(rates.perMinute))
		return nil, none, ""
	}
	if max := p.maxRequestBody(); r.ContentLength > max {
		d.deny(http.StatusRequestEntityTooLarge, "a request body of %d bytes is over the proxy's limit of %d", r.ContentLength, max)
		return nil, none, ""
	}
	conn, err := p.dialAPI(r.Context(), d)
	if err != nil {
		return nil, none, ""
	}
	return conn, cred, rest
}

// credentialFor is the key the Pod may send to host for path, or why not.
// The Pod's grant must be the row's, so a row left by an earlier sandbox
// of the same name, or by a warm member's earlier claim, is never used.
func (p *Proxy) credentialFor(g Grant, host, path string) (keys.Credential, string) {
	var none keys.Credential
	who := "pod " + g.Pod
	if g.Sandbox != "" {
		who = "sandbox " + g.Sandbox
	}
	if _, ok := hosts.Match(g.Rules, hosts.Target{Name: host, Port: 443}); !ok {
		return none, fmt.Sprintf("%s:443 is not among the hosts %s may reach", host, who)
	}
	if g.KeyGrant == "" {
		return none, fmt.Sprintf("%s was given no model keys (its Pod carries no %s)", who, keys.GrantAnnotation)
	}
	if p.Keys == nil {
		return none, "this proxy reads no key table"
	}
	e, ok, err := p.Keys.Entry(g.Pod)
	switch {
	case err != nil:
		return none, fmt.Sprintf("the key table's row for %s cannot be used: %v", who, err)
	case !ok:
		return none, fmt.Sprintf("the key table (Secret %s) has no row for %s", keys.SecretName, who)
	case subtle.ConstantTimeCompare([]byte(e.Grant), []byte(g.KeyGrant)) != 1:
		return none, fmt.Sprintf("the key table's row for %s was made for another grant (an earlier sandbox of that name, or an earlier claim): not used", who)
	}
	cred, ok := e.For(host)
	if !ok {
		return none, fmt.Sprintf("%s has no key for %s", who, host)
	}
	if !cred.Covers(path) {
		return none, fmt.Sprintf("the key for %s may be sent to %s only, not to %s", host, strings.Join(cred.Paths, ", "), untrusted.Truncate(path, 256))
	}
	return cred, ""
}

// dialAPI connects to a checked address of the API host on 443 (as any
// proxied request: resolved once, hosts.Permitted, the checked address
// dialled) and makes the TLS handshake, verifying the host's certificate.
func (p *Proxy) dialAPI(ctx context.Context, d *decision) (net.Conn, error) {
	addrs, err := p.addresses(ctx, d)
	if err != nil {
		d.deny(http.StatusBadGateway, "%v", err)
		return nil, err
	}
	if len(addrs) == 0 {
		d.deny(http.StatusForbidden, "%s has no address the proxy may connect to (%v)", d.target.Host(), d.dropped)
		return nil, fmt.Errorf("no address")
	}
	conn, err := p.dialFirst(ctx, d, addrs)
	if err != nil {
		d.deny(http.StatusBadGateway, "cannot connect to %s: %v", d.target, err)
		return nil, err
	}
	tc := tls.Client(conn, &tls.Config{
		ServerName: d.target.Name,
		RootCAs:    p.UpstreamRootCAs,
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
	})
	hctx, cancel := context.WithTimeout(ctx, orDefault(p.DialTimeout, 10*time.Second))
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		d.deny(http.StatusBadGateway, "TLS with %s failed: %v", d.target, err)
		return nil, err
	}
	return tc, nil
}

// recordRoute logs a route's one line: the decision, and for a request
// that went, its answer's status and the bytes each way. Never a key,
// never the query.
func (p *Proxy) recordRoute(d *decision, rw *countingWriter) {
	attrs := append(d.attrs(""), "route", true)
	if d.status != 0 {
		attrs = append(attrs, "status", d.status, "reason", d.reason)
		p.logger().Info("deny", attrs...)
		return
	}
	attrs = append(attrs, "status", rw.status, "bytes_sent", d.sent, "bytes_received", rw.n)
	if d.cut != "" {
		attrs = append(attrs, "cut", d.cut)
	}
	p.logger().Info("inject", attrs...)
}
