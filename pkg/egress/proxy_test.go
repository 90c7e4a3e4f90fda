package egress

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

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
