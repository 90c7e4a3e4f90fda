package main

// The key-route rows (issue #25, model API keys that never enter the
// sandbox): a model request through the egress proxy's key route, which
// adds the key on the way out, beside the same request with the key in
// the sandbox — through a CONNECT tunnel of the same proxy (the client
// does TLS), or straight to the API. All in this process on loopback, no
// cluster: pkg/egress's Proxy as its own tests run it (a grant table of
// one client address, a resolver and a dialer that send api.example.com's
// public address to a local TLS server, that server's CA as the upstream
// roots), so the route resolves, checks the address, verifies TLS, drops
// and adds credentials and counts tokens as it does in the cluster. The
// second column is the key-in-the-sandbox path, not kubectl.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

const (
	injectHost = "api.example.com" // httptest's certificate holds *.example.com
	injectPod  = "agentkernel-bench"
	// injectKey is the key the API accepts; the route's client sends
	// keys.Placeholder instead, so only a request the proxy gave the key
	// is answered.
	injectKey = "sk-bench-only-the-proxy-and-the-api-know-this"
	// The API's answer reports these counts, JSON and stream alike; the
	// rows check that the proxy counted them.
	injectInTokens, injectOutTokens = 512, 256
	// injectRequests requests in a round of the request rows,
	// injectStreams streams in a round of the stream rows, each of
	// injectEvents events.
	injectRequests = 20
	injectStreams  = 5
	injectEvents   = 200
)

// injectAPIAddr is the public address the proxy resolves the API host to
// and checks (hosts.Permitted); its dialer connects it to the local server.
var injectAPIAddr = netip.MustParseAddr("93.184.216.40")

func injectRows() []*Scenario {
	request := fmt.Sprintf("a ~2 KB JSON POST answered with ~1 KB of JSON (Anthropic-style usage), %d in turn", injectRequests)
	stream := fmt.Sprintf("a POST answered with %d server-sent events of ~100 bytes, flushed one by one; %d streams in turn", injectEvents, injectStreams)
	notKubectl := "the second column is the key in the sandbox, not kubectl"
	row := func(name string, ours, theirs Side, note string) *Scenario {
		return &Scenario{Name: name, Setup: needInject, Ours: ours, Kubectl: theirs, Note: note}
	}
	return []*Scenario{
		row("model request: key route vs CONNECT tunnel", injectRequestSide("route", true), injectRequestSide("tunnel", true),
			request+"; "+notKubectl+"; "+injectKeepAlive),
		row("model request: key route vs direct", injectRequestSide("route", true), injectRequestSide("direct", true),
			request+"; "+notKubectl+"; "+injectKeepAlive),
		row("model request, a new connection each: key route vs CONNECT tunnel", injectRequestSide("route", false), injectRequestSide("tunnel", false),
			request+"; "+notKubectl+"; no keep-alive on either side: the route a TCP connection to the proxy per request, the tunnel a CONNECT and a TLS handshake per request"),
		row("streamed answer, first event: key route vs CONNECT tunnel", injectStreamSide("route", false), injectStreamSide("tunnel", false),
			stream+"; from sending the request to reading the first event; "+notKubectl+"; "+injectKeepAlive),
		row("streamed answer, last event: key route vs CONNECT tunnel", injectStreamSide("route", true), injectStreamSide("tunnel", true),
			stream+"; from sending the request to reading the last event; "+notKubectl+"; "+injectKeepAlive),
	}
}

const injectKeepAlive = "keep-alive where the path allows it: the route's client keeps its plain-HTTP connection to the proxy, but the proxy makes a new TCP connection and TLS handshake to the API for every request (its oneConnTransport: one connection per request); the tunnel keeps one CONNECT and its TLS session; direct keeps its TLS connection"

var injectSideLabels = map[string]string{
	"route":  "plain HTTP to the proxy's key route, which adds the key and sends it on over verified TLS",
	"tunnel": "the key in the sandbox: CONNECT through the same proxy, the client does TLS",
	"direct": "the key in the sandbox: TLS straight to the API, no proxy",
}

// injectBench is the proxy, the API and the clients the rows share,
// started by the first row that runs and stopped at the end.
type injectBench struct {
	api       *httptest.Server
	proxy     *egress.Proxy
	proxySrv  *http.Server
	proxyAddr string
	denied    atomic.Int64 // the proxy's deny lines
	refused   atomic.Int64 // requests the API refused (no key, or the placeholder)
	// clients by path, then keep-alive or not
	clients                 map[string]map[bool]*http.Client
	requestBody, streamBody []byte
}

// injectMark is what had been counted before a round: check compares.
type injectMark struct {
	denied, refused int64
	usage           keys.HostUsage
}

func (b *injectBench) mark() injectMark {
	u, _ := b.proxy.Usage(injectPod)
	return injectMark{denied: b.denied.Load(), refused: b.refused.Load(), usage: u.Hosts[injectHost]}
}

var (
	injectOnce    sync.Once
	injectRunning *injectBench
	injectErr     error
)

func needInject(ctx context.Context, _ *Env) error {
	injectOnce.Do(func() { injectRunning, injectErr = startInject() })
	return injectErr
}

// stopInjectBench stops the proxy and the API if a row started them.
func stopInjectBench() {
	if b := injectRunning; b != nil {
		_ = b.proxySrv.Close()
		b.api.Close()
		for _, byKeep := range b.clients {
			for _, c := range byKeep {
				c.CloseIdleConnections()
			}
		}
	}
}

func startInject() (*injectBench, error) {
	b := &injectBench{clients: map[string]map[bool]*http.Client{}}
	b.requestBody = padJSON(`{"model":"claude-bench","max_tokens":1024,"messages":[{"role":"user","content":"%s"}]}`, 2048)
	b.streamBody = padJSON(`{"model":"claude-bench","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"%s"}]}`, 2048)
	answer := padJSON(`{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench","content":[{"type":"text","text":"%s"}],"stop_reason":"end_turn","usage":{"input_tokens":`+
		fmt.Sprint(injectInTokens)+`,"output_tokens":`+fmt.Sprint(injectOutTokens)+`}}`, 1024)
	events := sseEvents()

	b.api = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Api-Key") != injectKey || r.Host != injectHost || r.URL.Path != "/v1/messages" {
			b.refused.Add(1)
			http.Error(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`, http.StatusUnauthorized)
			return
		}
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(answer)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		f, _ := w.(http.Flusher)
		for _, ev := range events {
			if _, err := w.Write(ev); err != nil {
				return
			}
			f.Flush()
		}
	}))
	b.api.StartTLS() // HTTP/1.1 only, as the proxy speaks to the API
	roots := b.api.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	apiListener := strings.TrimPrefix(b.api.URL, "https://")

	rule, err := hosts.ParseRule(injectHost)
	if err != nil {
		return nil, err
	}
	grant := keys.NewGrant()
	client := netip.MustParseAddr("127.0.0.1")
	b.proxy = &egress.Proxy{
		Grants: injectGrants{client: {Sandbox: "bench", Pod: injectPod, Rules: []hosts.Rule{rule}, KeyGrant: grant}},
		Keys: injectKeys{injectPod: {Grant: grant, Credentials: []keys.Credential{{Injection: keys.Injection{
			Variable: "ANTHROPIC_API_KEY", Host: injectHost, Header: "X-Api-Key", Paths: []string{"/v1/"},
		}, Key: injectKey}}}},
		Resolver: injectResolver{},
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			if address != netip.AddrPortFrom(injectAPIAddr, 443).String() {
				return nil, fmt.Errorf("connect %s: not the bench's API", address)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, apiListener)
		},
		Log:             slog.New(&countingHandler{deny: &b.denied}),
		UpstreamRootCAs: roots,
		// The rows send hundreds of requests a minute from one Pod; the
		// default (600 a minute) would refuse some.
		RequestsPerMinute: 1 << 30,
	}
	ln, err := net.Listen("tcp", client.String()+":0")
	if err != nil {
		b.api.Close()
		return nil, err
	}
	b.proxySrv = b.proxy.Server()
	go func() { _ = b.proxySrv.Serve(b.proxy.Listener(ln)) }()
	b.proxyAddr = ln.Addr().String()

	proxyURL := &url.URL{Scheme: "http", Host: b.proxyAddr}
	tlsConfig := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	for _, keep := range []bool{true, false} {
		var d net.Dialer
		b.addClient("route", keep, &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, b.proxyAddr)
			},
		})
		b.addClient("tunnel", keep, &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: tlsConfig.Clone()})
		b.addClient("direct", keep, &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, apiListener)
			},
			TLSClientConfig: tlsConfig.Clone(),
		})
	}
	return b, nil
}

func (b *injectBench) addClient(path string, keepAlive bool, t *http.Transport) {
	t.DisableKeepAlives = !keepAlive
	t.DisableCompression = true // the same bytes on every path
	if b.clients[path] == nil {
		b.clients[path] = map[bool]*http.Client{}
	}
	b.clients[path][keepAlive] = &http.Client{Transport: t, Timeout: time.Minute}
}

// request makes one model request on path and returns its answer, open.
func (b *injectBench) request(ctx context.Context, path string, keepAlive bool, body []byte) (*http.Response, error) {
	u := "https://" + injectHost + "/v1/messages"
	key := injectKey
	if path == "route" {
		u, key = keys.BaseURL(b.proxyAddr, injectHost)+"/v1/messages", keys.Placeholder
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("X-Api-Key", key)
	resp, err := b.clients[path][keepAlive].Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	return resp, nil
}

func injectRequestSide(path string, keepAlive bool) Side {
	label := injectSideLabels[path]
	if !keepAlive {
		label += ", a new connection per request"
	}
	return Side{
		Label: label,
		Run: func(ctx context.Context, _ *Env, _ int) (Sample, error) {
			b := injectRunning
			before := b.mark()
			start := time.Now()
			for range injectRequests {
				resp, err := b.request(ctx, path, keepAlive, b.requestBody)
				if err != nil {
					return Sample{}, err
				}
				n, err := io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if err != nil || n < 900 {
					return Sample{}, fmt.Errorf("%s: an answer of %d bytes: %v", path, n, err)
				}
			}
			s := Sample{Wall: time.Since(start), Ops: injectRequests}
			return s, b.check(before, path, injectRequests, int64(len(b.requestBody)))
		},
	}
}

// injectStreamSide times streamed answers to their first event, or to
// their last.
func injectStreamSide(path string, toLast bool) Side {
	return Side{
		Label: injectSideLabels[path],
		Run: func(ctx context.Context, _ *Env, _ int) (Sample, error) {
			b := injectRunning
			before := b.mark()
			var s Sample
			for range injectStreams {
				start := time.Now()
				resp, err := b.request(ctx, path, true, b.streamBody)
				if err != nil {
					return Sample{}, err
				}
				first, last, n, err := readEvents(resp.Body)
				_ = resp.Body.Close()
				if err != nil {
					return Sample{}, fmt.Errorf("%s: after %d events: %w", path, n, err)
				}
				if n != injectEvents {
					return Sample{}, fmt.Errorf("%s: %d events, want %d", path, n, injectEvents)
				}
				if toLast {
					s.Wall += last.Sub(start)
				} else {
					s.Wall += first.Sub(start)
				}
			}
			s.Ops = injectStreams
			return s, b.check(before, path, injectStreams, int64(len(b.streamBody)))
		},
	}
}

// readEvents reads an event stream to its end: when the first and the
// last event were complete, and how many there were.
func readEvents(body io.Reader) (first, last time.Time, n int, err error) {
	br := bufio.NewReader(body)
	sawData := false
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, io.EOF) {
			return first, last, n, nil
		}
		if err != nil {
			return first, last, n, err
		}
		switch {
		case bytes.HasPrefix(line, []byte("data:")):
			sawData = true
		case len(bytes.TrimSpace(line)) == 0 && sawData:
			sawData = false
			last = time.Now()
			if n == 0 {
				first = last
			}
			n++
		}
	}
}

// check fails a round that did not go the way the row says: a denial, a
// request the API refused, or (on the route) usage the proxy did not
// count as the API reported it. The proxy counts a request once its
// handler returns, a moment after the client read the last byte: wait
// for it, untimed.
func (b *injectBench) check(before injectMark, path string, requests int, sent int64) error {
	if n := b.denied.Load() - before.denied; n > 0 {
		return fmt.Errorf("the proxy denied %d requests", n)
	}
	if n := b.refused.Load() - before.refused; n > 0 {
		return fmt.Errorf("the API refused %d requests (no key, or the placeholder)", n)
	}
	if path != "route" {
		return nil
	}
	r := int64(requests)
	want := keys.HostUsage{Requests: r, BytesSent: r * sent, InputTokens: r * injectInTokens, OutputTokens: r * injectOutTokens}
	var got keys.HostUsage
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		now := b.mark().usage
		got = keys.HostUsage{Requests: now.Requests - before.usage.Requests, BytesSent: now.BytesSent - before.usage.BytesSent,
			InputTokens: now.InputTokens - before.usage.InputTokens, OutputTokens: now.OutputTokens - before.usage.OutputTokens,
			Refused: now.Refused - before.usage.Refused}
		if got == want {
			return nil
		}
	}
	return fmt.Errorf("the proxy counted %+v for the round's route requests, want %+v", got, want)
}

// padJSON fills format's one %s so the document is size bytes.
func padJSON(format string, size int) []byte {
	pad := size - len(format) + len("%s")
	return []byte(fmt.Sprintf(format, strings.Repeat("x", max(pad, 0))))
}

// sseEvents is an Anthropic-style stream of injectEvents events of ~100
// bytes: message_start (input tokens), content_block_delta…, message_delta
// (output tokens), message_stop.
func sseEvents() [][]byte {
	evs := [][]byte{[]byte(fmt.Sprintf("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":%d,\"output_tokens\":1}}}\n\n", injectInTokens))}
	delta := "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"%s\"}}\n\n"
	for range injectEvents - 3 {
		evs = append(evs, padJSON(delta, 100))
	}
	return append(evs,
		[]byte(fmt.Sprintf("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":%d}}\n\n", injectOutTokens)),
		[]byte("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
}

type injectGrants map[netip.Addr]egress.Grant

func (g injectGrants) Lookup(ip netip.Addr) (egress.Grant, error) {
	if gr, ok := g[ip]; ok {
		return gr, nil
	}
	return egress.Grant{}, fmt.Errorf("%s is not the bench's client", ip)
}

type injectKeys map[string]keys.Entry

func (k injectKeys) Entry(pod string) (keys.Entry, bool, error) {
	e, ok := k[pod]
	return e, ok, nil
}

// injectResolver answers for the API host alone, with a public address.
type injectResolver struct{}

func (injectResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host != injectHost {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{injectAPIAddr}, nil
}

// countingHandler counts the proxy's deny lines and drops the rest.
type countingHandler struct{ deny *atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "deny" {
		h.deny.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
