package egress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// connLimits counts the proxy's client connections from the moment they
// are accepted, in all and per source address. Counting requests instead
// would leave a connection that never finishes its head uncounted while
// it holds a goroutine and buffers; a sandbox opening thousands of those
// would take the proxy past its memory limit, and its OOM kill would drop
// every sandbox's tunnels.
type connLimits struct {
	max, perClient int

	mu       sync.Mutex
	open     int
	byClient map[netip.Addr]int
	refused  map[netip.Addr]refusals // since the last log line, per client
	// answering bounds the refused connections being told why at once;
	// beyond it a refused connection is closed unread.
	answering chan struct{}
}

type refusals struct {
	n      int
	logged time.Time
}

func newConnLimits(maxConns, perClient int) *connLimits {
	if maxConns <= 0 {
		maxConns = 1024
	}
	if perClient <= 0 {
		perClient = 128
	}
	return &connLimits{
		max:       maxConns,
		perClient: perClient,
		byClient:  map[netip.Addr]int{},
		refused:   map[netip.Addr]refusals{},
		answering: make(chan struct{}, 16),
	}
}

// take counts a connection from client, or says which limit it hit.
func (l *connLimits) take(client netip.Addr) (full string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.byClient[client] >= l.perClient:
		return fmt.Sprintf("%s has %d connections open through the proxy, its limit", client, l.perClient)
	case l.open >= l.max:
		return "too many connections through the proxy at once"
	}
	l.open++
	l.byClient[client]++
	return ""
}

// put gives back what take counted.
func (l *connLimits) put(client netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byClient[client]--; l.byClient[client] <= 0 {
		delete(l.byClient, client)
		delete(l.refused, client)
	}
}

// counts says how many connections are open, in all and per client.
func (l *connLimits) counts() (int, map[netip.Addr]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	by := make(map[netip.Addr]int, len(l.byClient))
	for a, n := range l.byClient {
		by[a] = n
	}
	return l.open, by
}

// noteRefusal counts a refusal and says whether to log it, with how many
// were refused since the last line: a flood is a line a second, not a line
// a connection.
func (l *connLimits) noteRefusal(client netip.Addr, now time.Time) (n int, log bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.refused[client]
	r.n++
	if now.Sub(r.logged) < time.Second {
		l.refused[client] = r
		return 0, false
	}
	n = r.n
	l.refused[client] = refusals{logged: now}
	return n, true
}

// limitListener enforces connLimits as it accepts: a connection over a
// limit never reaches the HTTP server, so it gets no goroutine, no buffers
// and no header timeout to wait out.
type limitListener struct {
	net.Listener
	limits *connLimits
	log    *slog.Logger
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := clientOf(c.RemoteAddr())
		if full := ln.limits.take(client); full != "" {
			if n, log := ln.limits.noteRefusal(client, time.Now()); log {
				ln.log.Info("deny", "client", client.String(), "status", 503, "reason", full, "refused", n)
			}
			ln.refuse(c, full)
			continue
		}
		return &countedConn{Conn: c, release: func() { ln.limits.put(client) }}, nil
	}
}

// refusedLinger is how long a refused connection is given to take its
// answer.
const refusedLinger = time.Second

// refuse tells a client over its limit why, when few are being told at
// once, and otherwise just closes its connection. The answer is short and
// written to a socket that has just been accepted, so it does not wait on
// the client; the client's own bytes are then read and dropped for a
// moment, because closing with them unread sends a reset that can
// overtake the answer.
func (ln *limitListener) refuse(c net.Conn, full string) {
	select {
	case ln.limits.answering <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-ln.limits.answering }()
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(refusedLinger))
		body := "agentkernel egress proxy: " + full + "\n"
		_, err := fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
		if err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.CopyN(io.Discard, c, 64<<10)
	}()
}

func clientOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// countedConn gives its slot back when it is closed, once, whoever closes
// it: the HTTP server (after a request, on a timeout, at shutdown) or a
// tunnel that took the connection over.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes, so a tunnel's client sees the far end finish.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("%T cannot half-close", c.Conn)
}

// countedKey marks, in a connection's context, that the connection was
// counted: the proxy serves nothing on a listener that does not count.
type countedKey struct{}

func markCounted(ctx context.Context, c net.Conn) context.Context {
	if _, ok := c.(*countedConn); ok {
		return context.WithValue(ctx, countedKey{}, true)
	}
	return ctx
}
