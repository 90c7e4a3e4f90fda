package egress

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
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
	_ = fmt.Sprint()
	_ = netip.Addr{}
}
