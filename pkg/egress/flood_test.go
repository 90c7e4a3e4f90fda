package egress

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// liveBytes is what the process holds after a collection: the heap in use
// and the goroutines' stacks (a connection the server reads from has a
// goroutine, and its stack is not heap).
func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// halfSentHead is the start of a request head a flooding client never
// finishes: most of the header bytes the server accepts, so every held
// connection costs the proxy all it can.
var halfSentHead = "CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\nX-Pad: " + strings.Repeat("a", 12<<10)

// One sandbox opens thousands of connections and never finishes a request
// head on any: the proxy holds at most its limit of them, its memory stays
// within what those cost, another sandbox is still served, and every slot
// comes back when the flood ends.
func TestFloodOfHalfSentConnectionsIsBounded(t *testing.T) {
	const (
		maxConns  = 64
		perClient = 32
		flood     = 3000
		// What one held connection may cost the proxy: a goroutine's
		// stack, the server's read and write buffers, a head of up to
		// MaxHeaderBytes being parsed, and the socket.
		perConnBudget = 96 << 10
		slack         = 12 << 20 // the flooding side's own sockets live in this process too
	)
	h := newHarness(t, func(p *Proxy) {
		p.MaxConns, p.MaxConnsPerClient = maxConns, perClient
		// Long enough that no held connection times out during the test.
		p.Grants = fakeGrants{
			clientA: {Sandbox: "a", Pod: "agentkernel-a", Rules: rules(t, "allowed.example")},
			clientB: {Sandbox: "b", Pod: "agentkernel-b", Rules: rules(t, "allowed.example")},
		}
	})
	// Warm up: one served tunnel, so the baseline holds the code paths'
	// one-off allocations.
	if status, body, _, c := h.connect(t, clientB, "allowed.example:443", ""); status != http.StatusOK {
		t.Fatalf("b before the flood: %d %s", status, body)
	} else {
		_ = c.Close()
	}
	before := liveBytes()

	deadline := time.Now().Add(60 * time.Second)
	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: clientA.AsSlice()}, Timeout: 5 * time.Second}
	for i := 0; i < flood && time.Now().Before(deadline); i++ {
		c, err := d.Dial("tcp", h.proxyAddr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		conns = append(conns, c)
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		// A refused connection may already be closed: the write's error
		// is the proxy doing its job.
		_, _ = c.Write([]byte(halfSentHead))
	}
	if len(conns) != flood {
		t.Fatalf("opened only %d of %d connections in time", len(conns), flood)
	}

	// Another sandbox, while the flood holds its connections, is served:
	// its connection was accepted after every one of the flood's.
	start := time.Now()
	status, body, _, c := h.connect(t, clientB, "allowed.example:443", "")
	if status != http.StatusOK {
		t.Fatalf("b during the flood: %d %s", status, body)
	}
	served := time.Since(start)
	during := liveBytes()
	_ = c.Close()

	bound := before + maxConns*perConnBudget + slack
	t.Logf("flood of %d half-sent connections (limits %d, %d per client): live before %d KiB, during %d KiB (bound %d KiB); b served in %v",
		flood, maxConns, perClient, before>>10, during>>10, bound>>10, served)
	if during > bound {
		t.Fatalf("the proxy holds %d KiB during the flood, %d KiB before: more than %d connections can cost (bound %d KiB)",
			during>>10, before>>10, maxConns, bound>>10)
	}
	if served > 10*time.Second {
		t.Fatalf("b waited %v for its tunnel during the flood", served)
	}
	if open, by := h.proxy.OpenConns(); open > maxConns || by[clientA] > perClient {
		t.Fatalf("during the flood %d connections are counted, %d of them a's: over the limits", open, by[clientA])
	} else {
		t.Logf("connections held during the flood: %d (a: %d)", open, by[clientA])
	}
	for _, c := range conns {
		_ = c.Close()
	}
	waitForOpenConns(t, h.proxy, 0)
}

// waitForOpenConns waits until the proxy counts want connections.
func waitForOpenConns(t *testing.T, p *Proxy, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		open, by := p.OpenConns()
		if open == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy counts %d open connections (%v), want %d", open, by, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A connection counts from the moment it is accepted, before it has sent
// a byte of its request.
func TestHalfSentConnectionsCountAgainstTheLimit(t *testing.T) {
	h := newHarness(t, func(p *Proxy) { p.MaxConnsPerClient = 1 })
	half := h.dialFrom(t, clientA)
	if _, err := io.WriteString(half, "CONNECT allowed.example:443 HTTP/1.1\r\nHo"); err != nil {
		t.Fatal(err)
	}
	status, body, _, _ := h.connect(t, clientA, "allowed.example:443", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "127.0.0.1 has 1 connections open") {
		t.Fatalf("a's CONNECT while its half-sent connection is open: %d %s", status, body)
	}
	// Another address is not affected (b is refused for its grants).
	if status, body, _, _ := h.connect(t, clientB, "allowed.example:443", ""); status != http.StatusForbidden {
		t.Fatalf("b while a holds its limit: %d %s", status, body)
	}
	_ = half.Close()
	waitForOpenConns(t, h.proxy, 0)
	if status, body, _, _ := h.connect(t, clientA, "allowed.example:443", ""); status != http.StatusOK {
		t.Fatalf("a once its half-sent connection closed: %d %s", status, body)
	}
}

// A CONNECT tunnel is a hijacked connection: its slot is held while the
// tunnel is open, given back when it closes, and only once.
func TestTunnelSlotIsReleasedWhenTheTunnelCloses(t *testing.T) {
	h := newHarness(t, func(p *Proxy) { p.MaxConnsPerClient = 1 })
	status, body, br, c := h.connect(t, clientA, "allowed.example:443", "")
	if status != http.StatusOK {
		t.Fatalf("tunnel: %d %s", status, body)
	}
	// The handler has returned from its point of view long ago; the
	// tunnel is still open and still counted.
	if status, body, _, _ := h.connect(t, clientA, "allowed.example:443", ""); status != http.StatusServiceUnavailable {
		t.Fatalf("a second tunnel while the first is open: %d %s", status, body)
	}
	if open, _ := h.proxy.OpenConns(); open != 1 {
		t.Fatalf("%d connections counted while one tunnel is open", open)
	}
	_ = c.CloseWrite()
	if got, _ := io.ReadAll(br); string(got) != "echo:" {
		t.Fatalf("through the tunnel: %q", got)
	}
	_ = c.Close()
	waitForOpenConns(t, h.proxy, 0)
	if status, body, _, _ := h.connect(t, clientA, "allowed.example:443", ""); status != http.StatusOK {
		t.Fatalf("a new tunnel once the first closed: %d %s", status, body)
	}
}

func TestCountedConnGivesItsSlotBackOnce(t *testing.T) {
	l := newConnLimits(2, 2)
	a := netip.MustParseAddr("10.0.0.1")
	if full := l.take(a); full != "" {
		t.Fatal(full)
	}
	server, other := net.Pipe()
	defer func() { _ = other.Close() }()
	c := &countedConn{Conn: server, release: func() { l.put(a) }}
	_ = c.Close()
	_ = c.Close()
	if open, by := l.counts(); open != 0 || len(by) != 0 {
		t.Fatalf("after two Closes: %d open, %v", open, by)
	}
	// A double release would have let three in.
	for i := 0; i < 2; i++ {
		if full := l.take(a); full != "" {
			t.Fatalf("take %d: %s", i, full)
		}
	}
	if full := l.take(a); full == "" {
		t.Fatal("a third connection was counted over a limit of 2")
	}
}

// A tunnel in which nothing moves is closed after TunnelIdleTimeout, and
// its slot comes back.
func TestIdleTunnelIsClosed(t *testing.T) {
	h := newHarness(t, func(p *Proxy) { p.TunnelIdleTimeout = 300 * time.Millisecond })
	status, body, br, c := h.connect(t, clientA, "allowed.example:443", "")
	if status != http.StatusOK {
		t.Fatalf("tunnel: %d %s", status, body)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("an idle tunnel was not closed by the proxy: %v", err)
	}
	waitForOpenConns(t, h.proxy, 0)
}

// A client that opens a tunnel to a server that sends and never reads is
// cut off once its writes stall, and so is the upstream.
func TestTunnelToAClientThatNeverReadsIsClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	cut := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		buf := make([]byte, 64<<10)
		for {
			_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(buf); err != nil {
				cut <- err
				return
			}
		}
	}()
	h := newHarness(t, func(p *Proxy) { p.StallTimeout = 300 * time.Millisecond })
	h.dialer.mu.Lock()
	h.dialer.routes[publicIP+":9999"] = ln.Addr().String()
	h.dialer.mu.Unlock()
	status, body, _, _ := h.connect(t, clientA, publicIP+":9999", "")
	if status != http.StatusOK {
		t.Fatalf("tunnel: %d %s", status, body)
	}
	// The client reads nothing more.
	select {
	case err := <-cut:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the proxy kept reading from upstream for a client that never reads")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the proxy kept a tunnel open for a client that never reads")
	}
	waitForOpenConns(t, h.proxy, 0)
}

// A head sent a byte at a time does not hold its connection past
// HeaderTimeout: the deadline is for the whole head.
func TestHeadSentAByteAtATimeIsCutOff(t *testing.T) {
	h := newHarness(t, func(p *Proxy) { p.HeaderTimeout = 500 * time.Millisecond })
	c := h.dialFrom(t, clientA)
	head := "CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\n\r\n"
	start := time.Now()
	for i := 0; i < len(head); i++ {
		if _, err := c.Write([]byte{head[i]}); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the whole head would take 7s
		if time.Since(start) > 5*time.Second {
			t.Fatal("the proxy is still reading a head sent a byte at a time after 5s")
		}
	}
	waitForOpenConns(t, h.proxy, 0)
	if time.Since(start) > 5*time.Second {
		t.Fatalf("the connection was given back only after %v", time.Since(start))
	}
}

// A proxy served on a listener that does not count its connections would
// have no limits: it refuses to serve rather than serve without them.
func TestProxyOnAnUncountedListenerServesNothing(t *testing.T) {
	p := &Proxy{Grants: fakeGrants{clientA: {Sandbox: "a", Pod: "agentkernel-a", Rules: rules(t, "allowed.example")}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := p.Server()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	h := &harness{proxyAddr: ln.Addr().String()}
	status, body, _, _ := h.connect(t, clientA, "allowed.example:443", "")
	if status != http.StatusInternalServerError || !strings.Contains(body, "not configured to serve") {
		t.Fatalf("CONNECT through a proxy on an uncounted listener: %d %s", status, body)
	}
}
