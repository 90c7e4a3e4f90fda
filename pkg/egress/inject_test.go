package egress

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

func TestRouteAddsTheKeyAndDropsTheSandboxsCredentials(t *testing.T) {
	h := newInjectHarness(t, nil, nil)
	header := http.Header{
		"Authorization":       {"Bearer sandbox-made-this-up"},
		"X-Api-Key":           {keys.Placeholder},
		"Cookie":              {"session=1"},
		"Proxy-Authorization": {"Basic c2VjcmV0"},
		"Anthropic-Version":   {"2023-06-01"},
		"Connection":          {"X-Hop"},
		"X-Hop":               {"hop-by-hop"},
	}
	resp, body := h.route(t, clientA, "POST", messages+"?beta=true", header, `{"model":"m"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"input_tokens":12`) {
		t.Fatalf("route: %d %s", resp.StatusCode, body)
	}
	got := h.api.got()
	if len(got) != 1 {
		t.Fatalf("the API got %d requests", len(got))
	}
	r := got[0]
	if r.host != "api.example.com" || r.path != "/v1/messages" || r.query != "beta=true" || r.body != `{"model":"m"}` {
		t.Errorf("the API got host %q path %q query %q body %q", r.host, r.path, r.query, r.body)
	}
	if v := r.header.Values("X-Api-Key"); len(v) != 1 || v[0] != "sk-real-a" {
		t.Errorf("X-Api-Key upstream: %q, want the key alone", v)
	}
	for _, name := range []string{"Authorization", "Cookie", "Proxy-Authorization", "X-Hop", "X-Forwarded-For"} {
		if v := r.header.Values(name); len(v) > 0 {
			t.Errorf("%s went upstream: %q", name, v)
		}
	}
	if r.header.Get("Anthropic-Version") != "2023-06-01" {
		t.Errorf("the API's own headers must pass: %v", r.header)
	}
	u, ok := h.proxy.Usage("agentkernel-a")
	if want := (keys.HostUsage{Requests: 1, BytesSent: 13, BytesGot: int64(len(body)), InputTokens: 12, OutputTokens: 34}); !ok || u.Hosts["api.example.com"] != want {
		t.Errorf("usage %+v, want %+v", u, want)
	}
	lines := h.log.lines(t)
	if len(lines) != 1 || lines[0]["msg"] != "inject" || lines[0]["sandbox"] != "a" || lines[0]["status"] != float64(200) {
		t.Fatalf("want one inject line, got %v", lines)
	}
	if l := fmt.Sprint(lines); strings.Contains(l, "sk-real-a") || strings.Contains(l, "beta=true") {
		t.Errorf("the log holds the key or the query: %s", l)
	}
}

func TestRouteRefusals(t *testing.T) {
	for _, tc := range []struct {
		what   string
		from   netip.Addr
		path   string
		rows   map[string]keys.Entry // replaces the table's rows
		want   int
		reason string
	}{
		{"a host the sandbox has no key for", clientA, keys.RoutePrefix + "other.example.com/v1/messages", nil, 403, "sandbox a has no key for other.example.com"},
		{"a host the sandbox may not reach", clientA, keys.RoutePrefix + "evil.example.com/v1/messages", nil, 403, "evil.example.com:443 is not among the hosts sandbox a may reach"},
		{"a path the key does not cover", clientA, keys.RoutePrefix + "api.example.com/v2/admin", nil, 403, "may be sent to /v1/ only, not to /v2/admin"},
		{"the route's root", clientA, keys.RoutePrefix + "api.example.com", nil, 403, "not to /"},
		{"no row for the sandbox", clientB, messages, nil, 403, "has no row for sandbox b"},
		{"the first sandbox's row under the second's name", clientB, messages, map[string]keys.Entry{
			"agentkernel-b": {Grant: grantA, Credentials: []keys.Credential{apiCredential("sk-real-a")}},
		}, 403, "made for another grant"},
		{"an address that is no sandbox", netip.MustParseAddr("127.0.0.3"), messages, nil, 403, "has no egress grants"},
		{"dot-dot", clientA, keys.RoutePrefix + "api.example.com/v1/../admin", nil, 400, `no ".", ".."`},
		{"escaped dot-dot", clientA, keys.RoutePrefix + "api.example.com/v1/%2e%2e/admin", nil, 400, "no escapes"},
		{"an escaped slash", clientA, keys.RoutePrefix + "api.example.com/v1%2fmessages", nil, 400, "no escapes"},
		{"a double slash", clientA, keys.RoutePrefix + "api.example.com//v1/messages", nil, 400, "empty segments"},
		{"a dot segment", clientA, keys.RoutePrefix + "api.example.com/./v1/messages", nil, 400, `no "."`},
		{"an upper-case host", clientA, keys.RoutePrefix + "API.example.com/v1/messages", nil, 400, "lower case"},
		{"a host with a port", clientA, keys.RoutePrefix + "api.example.com:8443/v1/messages", nil, 400, "one host name"},
		{"no host", clientA, keys.RoutePrefix, nil, 400, "names no API host"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			h := newInjectHarness(t, nil, nil)
			if tc.rows != nil {
				h.keys.rows = tc.rows
			}
			resp, body := h.route(t, tc.from, "POST", tc.path, http.Header{"X-Api-Key": {keys.Placeholder}}, "{}")
			if resp.StatusCode != tc.want || !strings.Contains(body, tc.reason) {
				t.Fatalf("%s: %d %q, want %d saying %q", tc.path, resp.StatusCode, body, tc.want, tc.reason)
			}
			if strings.Contains(body, "sk-real") {
				t.Fatalf("the refusal holds a key: %s", body)
			}
			if n := len(h.api.got()); n != 0 {
				t.Fatalf("the API got %d requests", n)
			}
			lines := h.log.lines(t)
			if len(lines) != 1 || lines[0]["msg"] != "deny" || lines[0]["route"] != true {
				t.Fatalf("want one deny line, got %v", lines)
			}
		})
	}
}

// A key route never switches protocols: the limits and the counts would
// not see what follows.
func TestRouteDoesNotUpgrade(t *testing.T) {
	h := newInjectHarness(t, nil, nil)
	c := h.dialFrom(t, clientA)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: proxy\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", messages)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
	got := h.api.got()
	if len(got) != 1 || got[0].header.Get("Upgrade") != "" || got[0].header.Get("Connection") != "close" {
		t.Fatalf("the API got %v", got)
	}
}

// An answer the API compresses (SDKs ask for gzip) is still counted.
func TestRouteCountsACompressedAnswer(t *testing.T) {
	h := newInjectHarness(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		const body = `{"type":"message","usage":{"input_tokens":3,"output_tokens":4}}`
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			_, _ = io.WriteString(w, body)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, body)
		_ = zw.Close()
	}, nil)
	resp, body := h.route(t, clientA, "POST", messages, http.Header{"Accept-Encoding": {"gzip, deflate"}}, "{}")
	if resp.StatusCode != 200 || !strings.Contains(body, "input_tokens") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if u, _ := h.proxy.Usage("agentkernel-a"); u.Hosts["api.example.com"].InputTokens != 3 || u.Hosts["api.example.com"].OutputTokens != 4 {
		t.Fatalf("usage %+v", u)
	}
}

// A client that sends a route through HTTP_PROXY all the same (absolute
// form, the proxy's own address) gets the route; an absolute-form request
// for any other authority is a plain proxied request.
func TestRouteInAbsoluteForm(t *testing.T) {
	h := newInjectHarness(t, nil, func(p *Proxy) { p.Self = []string{"10.96.0.9:3128"} })
	for _, authority := range []string{h.proxyAddr, "10.96.0.9:3128"} {
		c := h.dialFrom(t, clientA)
		fmt.Fprintf(c, "POST http://%s%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", authority, messages, authority)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), "input_tokens") {
			t.Fatalf("absolute form to %s: %d %s", authority, resp.StatusCode, b)
		}
	}
	c := h.dialFrom(t, clientA)
	fmt.Fprintf(c, "POST http://api.example.com%s HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", messages)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("absolute form to another authority: %d, want the plain proxy's 403 (port 80 not granted)", resp.StatusCode)
	}
	if n := len(h.api.got()); n != 2 {
		t.Fatalf("the API got %d requests, want 2", n)
	}
}

func TestRouteLimits(t *testing.T) {
	big := strings.Repeat("x", 2000)
	t.Run("request body with a length", func(t *testing.T) {
		h := newInjectHarness(t, nil, func(p *Proxy) { p.MaxRequestBody = 1000 })
		resp, body := h.route(t, clientA, "POST", messages, nil, big)
		if resp.StatusCode != 413 || !strings.Contains(body, "request body of 2000 bytes is over the proxy's limit of 1000") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("request body streamed", func(t *testing.T) {
		h := newInjectHarness(t, nil, func(p *Proxy) { p.MaxRequestBody = 1000 })
		req, _ := http.NewRequest("POST", "http://"+h.proxyAddr+messages, io.MultiReader(strings.NewReader(big))) // no length: chunked
		resp, err := h.client(clientA).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || !strings.Contains(string(b), "over the proxy's limit of 1000 bytes") {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})
	t.Run("response with a length", func(t *testing.T) {
		h := newInjectHarness(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) }, func(p *Proxy) { p.MaxResponseBody = 1000 })
		resp, body := h.route(t, clientA, "POST", messages, nil, "{}")
		if resp.StatusCode != 502 || !strings.Contains(body, "the response is over the proxy's limit: 2000 bytes, the limit is 1000") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("response streamed", func(t *testing.T) {
		h := newInjectHarness(t, func(w http.ResponseWriter, r *http.Request) {
			for range 4 {
				_, _ = io.WriteString(w, big[:500])
				http.NewResponseController(w).Flush()
			}
		}, func(p *Proxy) { p.MaxResponseBody = 1000 })
		req, _ := http.NewRequest("POST", "http://"+h.proxyAddr+messages, strings.NewReader("{}"))
		resp, err := h.client(clientA).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err == nil || len(b) > 1000 {
			t.Fatalf("read %d bytes, err %v: want at most 1000 and the stream cut", len(b), err)
		}
		waitFor(t, "the inject line saying the answer was cut", func() bool {
			return strings.Contains(h.log.String(), "the response went over the proxy's limit")
		})
	})
	t.Run("rate", func(t *testing.T) {
		now := time.Unix(1e9, 0)
		h := newInjectHarness(t, nil, func(p *Proxy) { p.RequestsPerMinute = 2; p.Now = func() time.Time { return now } })
		for i := range 2 {
			if resp, body := h.route(t, clientA, "POST", messages, nil, "{}"); resp.StatusCode != 200 {
				t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
			}
		}
		resp, body := h.route(t, clientA, "POST", messages, nil, "{}")
		if resp.StatusCode != 429 || !strings.Contains(body, "pod agentkernel-a sent more than 2 requests a minute") {
			t.Fatalf("third request: %d %s", resp.StatusCode, body)
		}
		// Another sandbox's bucket is its own (b has no row: refused
		// for that, not for a's rate).
		if resp, body := h.route(t, clientB, "POST", messages, nil, "{}"); resp.StatusCode != 403 {
			t.Fatalf("b: %d %s", resp.StatusCode, body)
		}
		now = now.Add(30 * time.Second) // half a minute: one request's worth
		if resp, body := h.route(t, clientA, "POST", messages, nil, "{}"); resp.StatusCode != 200 {
			t.Fatalf("after 30s: %d %s", resp.StatusCode, body)
		}
		if u, _ := h.proxy.Usage("agentkernel-a"); u.Hosts["api.example.com"].Requests != 3 || u.Hosts["api.example.com"].Refused != 1 {
			t.Fatalf("usage %+v", u)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Server-sent events pass through as they are written: the API sends its
// second event only once the client has read the first.
func TestRouteStreamsEventsUnbuffered(t *testing.T) {
	readFirst := make(chan struct{})
	h := newInjectHarness(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-readFirst:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n")
	}, nil)
	req, _ := http.NewRequest("POST", "http://"+h.proxyAddr+messages, strings.NewReader("{}"))
	resp, err := h.client(clientA).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	br := bufio.NewReader(resp.Body)
	if l, err := br.ReadString('\n'); err != nil || l != "event: message_start\n" {
		t.Fatalf("first line %q, %v", l, err)
	}
	close(readFirst)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "message_delta") {
		t.Fatalf("the rest: %q", rest)
	}
	waitFor(t, "the stream's usage", func() bool {
		u, _ := h.proxy.Usage("agentkernel-a")
		return u.Hosts["api.example.com"].InputTokens == 7 && u.Hosts["api.example.com"].OutputTokens == 9
	})
}

// A client that goes away mid-stream ends the upstream request.
func TestRouteClientCancelEndsTheUpstreamRequest(t *testing.T) {
	upstreamDone, stop := make(chan struct{}), make(chan struct{})
	h := newInjectHarness(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {}\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
			close(upstreamDone)
		case <-stop: // the test failed: let the server close
		}
	}, nil)
	t.Cleanup(func() { close(stop) })
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+h.proxyAddr+messages, strings.NewReader("{}"))
	resp, err := h.client(clientA).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || l != "data: {}\n" {
		t.Fatalf("first line %q, %v", l, err)
	}
	cancel()
	select {
	case <-upstreamDone:
	case <-time.After(20 * time.Second):
		t.Fatal("the API's request went on after the client went away")
	}
	waitFor(t, "the request counted", func() bool {
		u, _ := h.proxy.Usage("agentkernel-a")
		return u.Hosts["api.example.com"].Requests == 1
	})
}
