package egress

import (
	"bufio"
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

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
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
type syncBuffer struct{ testexec.SyncBuffer }

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
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
