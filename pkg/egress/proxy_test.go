package egress

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
)

// The proxy is tested in-process: its client connections come from
// loopback addresses that the fake grant table maps to sandboxes, its
// resolver is a table (so "resolves to a private address" needs no DNS),
// and its dialer connects the public addresses it decided on to local
// listeners, recording every address it was asked to dial.

type fakeGrants map[netip.Addr]Grant

func (g fakeGrants) Lookup(ip netip.Addr) (Grant, error) {
	if gr, ok := g[ip]; ok {
		return gr, nil
	}
	return Grant{}, errors.New("no pod in the namespace has this address")
}

type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr // successive answers; the last repeats
	calls   map[string]int
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if network != "ip" {
		return nil, fmt.Errorf("unexpected network %q", network)
	}
	if c, err := hosts.ParseAuthority(host+":1", 0); err != nil || c.Name != host {
		return nil, fmt.Errorf("asked to resolve %q, not a canonical name", host)
	}
	answers, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := r.calls[host]
	r.calls[host]++
	if n >= len(answers) {
		n = len(answers) - 1
	}
	return answers[n], nil
}

func (r *fakeResolver) callsFor(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

type routeDialer struct {
	mu     sync.Mutex
	routes map[string]string // "ip:port" the proxy decided on -> local listener
	dialed []string
}

func (d *routeDialer) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, address)
	to, ok := d.routes[address]
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("connect %s: connection refused", address)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, to)
}

func (d *routeDialer) dialedAddrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dialed...)
}

// syncBuffer collects the proxy's log lines from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// echoServer answers each connection with "echo:" and what it read until
// the client half-closed: it proves bytes flow both ways and EOF arrives.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				b, _ := io.ReadAll(c)
				_, _ = io.WriteString(c, "echo:"+string(b))
			}()
		}
	}()
	return ln.Addr().String()
}

type harness struct {
	proxyAddr string
	resolver  *fakeResolver
	dialer    *routeDialer
	log       *syncBuffer
	proxy     *Proxy
}

var (
	clientA = netip.MustParseAddr("127.0.0.1") // sandbox a
	clientB = netip.MustParseAddr("127.0.0.2") // sandbox b
	// 127.0.0.3 is no sandbox at all.

	publicIP  = "93.184.216.34"
	publicIP2 = "93.184.216.35"
)

func rules(t *testing.T, specs ...string) []hosts.Rule {
	t.Helper()
	var rs []hosts.Rule
	for _, s := range specs {
		r, err := hosts.ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

func newHarness(t *testing.T, configure func(*Proxy)) *harness {
	t.Helper()
	echo := echoServer(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s path=%s xff=%q proxy-auth=%q", r.Host, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"), r.Header.Get("Proxy-Authorization"))
	}))
	t.Cleanup(web.Close)
	webAddr := strings.TrimPrefix(web.URL, "http://")
	h := &harness{
		resolver: &fakeResolver{calls: map[string]int{}, answers: map[string][][]netip.Addr{
			"allowed.example":  {{netip.MustParseAddr(publicIP)}},
			"web.example":      {{netip.MustParseAddr(publicIP)}},
			"private.example":  {{netip.MustParseAddr("10.0.0.5")}},
			"mixed.example":    {{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr(publicIP2)}},
			"metadata.example": {{netip.MustParseAddr("169.254.169.254")}},
			"mapped.example":   {{netip.MustParseAddr("::ffff:127.0.0.1")}},
			"nat64.example":    {{netip.MustParseAddr("64:ff9b::a9fe:a9fe")}},
			"loop.example":     {{netip.MustParseAddr("127.0.0.1")}},
			// Public when the proxy checks, private when anyone asks again.
			"rebind.example": {{netip.MustParseAddr(publicIP)}, {netip.MustParseAddr("10.0.0.5")}},
		}},
		dialer: &routeDialer{routes: map[string]string{
			publicIP + ":443":  echo,
			publicIP2 + ":443": echo,
			publicIP + ":80":   webAddr,
			publicIP + ":8080": webAddr,
			"10.0.0.5:443":     echo,
		}},
		log: &syncBuffer{},
	}
	h.proxy = &Proxy{
		Grants: fakeGrants{
			clientA: {Sandbox: "a", Pod: "agentkernel-a", Rules: rules(t,
				"allowed.example", "*.wild.example", "web.example:80", "web.example:8080", "private.example", "mixed.example",
				"metadata.example", "mapped.example", "nat64.example", "loop.example:80", "rebind.example", "nowhere.example",
				"93.184.216.0/24", "0.0.0.0/0:9999")},
			clientB: {Sandbox: "b", Pod: "agentkernel-b", Rules: rules(t, "other.example")},
		},
		Resolver: h.resolver,
		Dial:     h.dialer.Dial,
		Log:      slog.New(slog.NewJSONHandler(h.log, nil)),
	}
	h.resolver.answers["x.wild.example"] = [][]netip.Addr{{netip.MustParseAddr(publicIP)}}
	if configure != nil {
		configure(h.proxy)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := h.proxy.Server()
	go func() { _ = srv.Serve(h.proxy.Listener(ln)) }()
	t.Cleanup(func() { _ = srv.Close() })
	h.proxyAddr = ln.Addr().String()
	return h
}

// dialFrom connects to the proxy from a given loopback address.
func (h *harness) dialFrom(t *testing.T, from netip.Addr) *net.TCPConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", h.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// connect sends CONNECT target (and extra bytes right behind it) and
// returns the proxy's answer status and the connection's reader.
func (h *harness) connect(t *testing.T, from netip.Addr, target, extra string) (int, string, *bufio.Reader, *net.TCPConn) {
	t.Helper()
	c := h.dialFrom(t, from)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n%s", target, target, extra)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: reading the answer: %v", target, err)
	}
	var body string
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
	}
	return resp.StatusCode, body, br, c
}

func TestConnectTunnelsAnAllowedHost(t *testing.T) {
	h := newHarness(t, nil)
	// The client sends its first bytes before the proxy answers (as TLS
	// clients that pipeline do): they must not be lost.
	status, body, br, c := h.connect(t, clientA, "allowed.example:443", "hello ")
	if status != http.StatusOK {
		t.Fatalf("CONNECT allowed.example:443 = %d %s", status, body)
	}
	if _, err := io.WriteString(c, "world"); err != nil {
		t.Fatal(err)
	}
	// Half-close: the upstream sees EOF, answers, and the answer still
	// comes back.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "echo:hello world" {
		t.Fatalf("through the tunnel: %q", got)
	}
	if d := h.dialer.dialedAddrs(); len(d) != 1 || d[0] != publicIP+":443" {
		t.Fatalf("dialled %v, want only the checked address %s:443", d, publicIP)
	}
}

// A client may send its whole request and half-close at once (nc does):
// net/http then cancels the request's context, which must not cancel the
// resolution, the dial or the tunnel.
func TestHalfClosingClientsAreServed(t *testing.T) {
	h := newHarness(t, nil)
	c := h.dialFrom(t, clientA)
	fmt.Fprintf(c, "CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\n\r\nping")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := "HTTP/1.1 200 Connection established\r\n\r\necho:ping"; string(got) != want {
		t.Fatalf("half-closed CONNECT: %q, want %q", got, want)
	}
	c = h.dialFrom(t, clientA)
	fmt.Fprintf(c, "GET http://web.example/x HTTP/1.0\r\nHost: web.example\r\n\r\n")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "host=web.example path=/x") {
		t.Fatalf("half-closed GET: %d %q", resp.StatusCode, body)
	}
}

func TestConnectDecisions(t *testing.T) {
	for _, tc := range []struct {
		what   string
		from   netip.Addr
		target string
		want   int
		reason string   // in the answer's body and the log line
		dialed []string // exactly these addresses, in order
	}{
		{"a wildcard subdomain", clientA, "x.wild.example:443", 200, "", []string{publicIP + ":443"}},
		{"a host not granted", clientA, "denied.example:443", 403, "not among the hosts sandbox a may reach", nil},
		{"a granted host on another port", clientA, "allowed.example:8443", 403, "not among", nil},
		{"the wildcard's own domain", clientA, "wild.example:443", 403, "not among", nil},
		{"another sandbox's grant", clientB, "allowed.example:443", 403, "sandbox b may reach", nil},
		{"an address that is no sandbox", netip.MustParseAddr("127.0.0.3"), "allowed.example:443", 403, "has no egress grants", nil},
		{"a name that resolves to a private address", clientA, "private.example:443", 403, "10.0.0.5 (private (RFC 1918))", nil},
		{"a name that resolves to the metadata address", clientA, "metadata.example:443", 403, "link-local", nil},
		{"a name that resolves to IPv4-mapped loopback", clientA, "mapped.example:443", 403, "loopback", nil},
		{"a name that resolves to NAT64 metadata", clientA, "nat64.example:443", 403, "link-local", nil},
		{"a name that resolves to loopback", clientA, "loop.example:80", 403, "loopback", nil},
		{"a name with private and public addresses", clientA, "mixed.example:443", 200, "", []string{publicIP2 + ":443"}},
		{"a name that does not resolve", clientA, "nowhere.example:443", 502, "cannot resolve nowhere.example", nil},
		{"an IP literal inside a granted block", clientA, publicIP + ":443", 200, "", []string{publicIP + ":443"}},
		{"an IP literal not granted", clientA, "198.51.100.7:443", 403, "not among", nil},
		{"an IP literal of a name it was granted", clientB, publicIP + ":443", 403, "not among", nil},
		{"loopback under 0.0.0.0/0", clientA, "127.0.0.1:9999", 403, "loopback", nil},
		{"metadata under 0.0.0.0/0", clientA, "169.254.169.254:9999", 403, "link-local", nil},
		{"private under 0.0.0.0/0", clientA, "10.1.2.3:9999", 403, "private", nil},
		{"IPv4-mapped loopback", clientA, "[::ffff:127.0.0.1]:9999", 403, "loopback", nil},
		{"a target with userinfo", clientA, "user@allowed.example:443", 400, "malformed Host header", nil}, // net/http refuses it first
		{"a target without a port", clientA, "allowed.example", 400, "port is required", nil},
		{"a numeric host", clientA, "2130706433:443", 400, "number", nil},
		{"upper case and a root dot", clientA, "ALLOWED.Example.:443", 200, "", []string{publicIP + ":443"}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			h := newHarness(t, nil)
			status, body, _, _ := h.connect(t, tc.from, tc.target, "")
			if status != tc.want || !strings.Contains(body, tc.reason) {
				t.Fatalf("CONNECT %s from %s = %d %q, want %d saying %q", tc.target, tc.from, status, body, tc.want, tc.reason)
			}
			if d := h.dialer.dialedAddrs(); strings.Join(d, ",") != strings.Join(tc.dialed, ",") {
				t.Fatalf("dialled %v, want %v", d, tc.dialed)
			}
			lines := h.log.lines(t)
			if strings.Contains(body, "malformed") {
				return // refused by net/http before the proxy's handler saw it
			}
			if len(lines) != 1 {
				t.Fatalf("want one log line per decision, got %d: %v", len(lines), lines)
			}
			l := lines[0]
			wantMsg := "allow"
			if tc.want != 200 {
				wantMsg = "deny"
			}
			if l["msg"] != wantMsg || l["client"] != tc.from.String() || l["method"] != "CONNECT" {
				t.Fatalf("log line %v, want msg %s from %s", l, wantMsg, tc.from)
			}
			if tc.want != 200 && !strings.Contains(fmt.Sprint(l["reason"]), tc.reason) {
				t.Fatalf("log line %v does not say %q", l, tc.reason)
			}
		})
	}
}

// Opening a private range lets a granted name resolve into it; it never
// opens loopback or metadata.
func TestPrivateRangesOpenedByTheAdmin(t *testing.T) {
	h := newHarness(t, func(p *Proxy) {
		p.Private = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("0.0.0.0/0")}
	})
	if status, body, _, _ := h.connect(t, clientA, "private.example:443", ""); status != 200 {
		t.Fatalf("private.example with 10.0.0.0/8 opened: %d %s", status, body)
	}
	for _, target := range []string{"metadata.example:443", "loop.example:80", "127.0.0.1:9999"} {
		if status, body, _, _ := h.connect(t, clientA, target, ""); status != 403 {
			t.Errorf("%s with 0.0.0.0/0 opened: %d %s", target, status, body)
		}
	}
}

// DNS rebinding: the proxy resolves once, checks, and dials the address it
// checked. A second request resolves again, sees the private address and
// refuses it.
func TestRebindingIsDialledAsChecked(t *testing.T) {
	h := newHarness(t, nil)
	status, body, _, _ := h.connect(t, clientA, "rebind.example:443", "")
	if status != 200 {
		t.Fatalf("first CONNECT: %d %s", status, body)
	}
	if n := h.resolver.callsFor("rebind.example"); n != 1 {
		t.Fatalf("resolved %d times for one request; want exactly once", n)
	}
	status, body, _, _ = h.connect(t, clientA, "rebind.example:443", "")
	if status != 403 || !strings.Contains(body, "10.0.0.5") {
		t.Fatalf("second CONNECT, now resolving to 10.0.0.5: %d %s", status, body)
	}
	if d := h.dialer.dialedAddrs(); len(d) != 1 || d[0] != publicIP+":443" {
		t.Fatalf("dialled %v; want only the address checked the first time", d)
	}
}

func TestPlainHTTPIsForwardedToTheGrantedHostOnly(t *testing.T) {
	h := newHarness(t, nil)
	get := func(from netip.Addr, rawReq string) (*http.Response, string) {
		t.Helper()
		c := h.dialFrom(t, from)
		if _, err := io.WriteString(c, rawReq); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// A Host header naming another site and credentials for the proxy:
	// the server at the allowed address sees neither, nor the sandbox's
	// address.
	resp, body := get(clientA, "GET http://web.example/some/path?q=1 HTTP/1.1\r\nHost: evil.example\r\nProxy-Authorization: Basic c2VjcmV0\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || body != `host=web.example path=/some/path?q=1 xff="" proxy-auth=""` {
		t.Fatalf("GET http://web.example/: %d %q", resp.StatusCode, body)
	}
	resp, body = get(clientA, "GET http://web.example:8080/ HTTP/1.1\r\nHost: web.example:8080\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "host=web.example:8080 ") {
		t.Fatalf("GET http://web.example:8080/: %d %q", resp.StatusCode, body)
	}
	for _, tc := range []struct {
		what, req string
		want      int
	}{
		{"a host not granted", "GET http://denied.example/ HTTP/1.1\r\nHost: denied.example\r\n\r\n", 403},
		{"a granted host on a port not granted", "GET http://web.example:81/ HTTP/1.1\r\nHost: web.example:81\r\n\r\n", 403},
		{"https in absolute form", "GET https://allowed.example/ HTTP/1.1\r\nHost: allowed.example\r\n\r\n", 400},
		{"a request for the proxy itself", "GET / HTTP/1.1\r\nHost: proxy\r\n\r\n", 400},
		{"a private address by name", "GET http://private.example:443/ HTTP/1.1\r\nHost: private.example\r\n\r\n", 403},
	} {
		resp, body := get(clientA, tc.req)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.what, resp.StatusCode, body, tc.want)
		}
	}
	// Another sandbox cannot use sandbox a's grant.
	if resp, body := get(clientB, "GET http://web.example/ HTTP/1.1\r\nHost: web.example\r\n\r\n"); resp.StatusCode != 403 {
		t.Errorf("sandbox b reached web.example: %d %q", resp.StatusCode, body)
	}
	for _, l := range h.log.lines(t) {
		if strings.Contains(fmt.Sprint(l), "some/path") || strings.Contains(fmt.Sprint(l), "q=1") {
			t.Errorf("a log line holds the request's path or query: %v", l)
		}
	}
}

func TestTooManyConnectionsAreRefused(t *testing.T) {
	h := newHarness(t, func(p *Proxy) { p.MaxConns = 1 })
	status, body, _, _ := h.connect(t, clientA, "allowed.example:443", "")
	if status != 200 {
		t.Fatalf("first tunnel: %d %s", status, body)
	}
	// The first tunnel stays open (its client never half-closes).
	status, body, _, _ = h.connect(t, clientA, "allowed.example:443", "")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("second tunnel while the first is open: %d %s", status, body)
	}
}

func TestOneSandboxCannotTakeEveryConnection(t *testing.T) {
	h := newHarness(t, func(p *Proxy) { p.MaxConnsPerClient = 1 })
	if status, body, _, _ := h.connect(t, clientA, "allowed.example:443", ""); status != 200 {
		t.Fatalf("a's first tunnel: %d %s", status, body)
	}
	status, body, _, _ := h.connect(t, clientA, "allowed.example:443", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "127.0.0.1 has 1 connections open") {
		t.Fatalf("a's second tunnel while its first is open: %d %s", status, body)
	}
	// Another sandbox is not affected (b is refused for its grants, not
	// for a's connections).
	if status, body, _, _ := h.connect(t, clientB, "allowed.example:443", ""); status != http.StatusForbidden {
		t.Fatalf("b while a holds its limit: %d %s", status, body)
	}
}

// The default dialer checks the address once more as the socket connects.
func TestCheckingDialerRefusesWhatIsNeverReachable(t *testing.T) {
	addr := echoServer(t) // on 127.0.0.1
	p := &Proxy{Private: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
	_, err := p.checkingDialer(time.Second).DialContext(context.Background(), "tcp", addr)
	if err == nil || !strings.Contains(err.Error(), "refusing to dial 127.0.0.1: loopback") {
		t.Fatalf("dialling loopback: %v", err)
	}
}

// A proxy handed to a real server with no grants at all refuses everyone
// rather than failing open.
func TestNoGrantsRefusesEveryone(t *testing.T) {
	h := newHarness(t, func(p *Proxy) { p.Grants = fakeGrants{} })
	if status, _, _, _ := h.connect(t, clientA, "allowed.example:443", ""); status != 403 {
		t.Fatalf("CONNECT with an empty grant table: %d", status)
	}
}
