package egress

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// The key routes are tested against a TLS server of the test's (its
// certificate holds *.example.com): the proxy resolves api.example.com to
// a public address, and the harness's dialer connects that address to
// the server.

const apiIP = "93.184.216.40"

var (
	grantA = keys.NewGrant()
	grantB = keys.NewGrant()
)

type fakeKeys struct {
	mu   sync.Mutex
	rows map[string]keys.Entry
}

func (k *fakeKeys) Entry(pod string) (keys.Entry, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.rows[pod]
	return e, ok, nil
}

func apiCredential(key string) keys.Credential {
	return keys.Credential{Injection: keys.Injection{
		Variable: "ANTHROPIC_API_KEY", Host: "api.example.com", Header: "X-Api-Key", Paths: []string{"/v1/"},
	}, Key: key}
}

// seen is what the API server got.
type seen struct {
	path, query, host string
	header            http.Header
	body              string
}

type apiServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func (a *apiServer) got() []seen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]seen(nil), a.reqs...)
}

type injectHarness struct {
	*harness
	api  *apiServer
	keys *fakeKeys
}

// newInjectHarness: sandbox a (clientA, Pod agentkernel-a) has a key for
// api.example.com, sandbox b (clientB) a grant of its own but no row.
func newInjectHarness(t *testing.T, handler http.HandlerFunc, configure func(*Proxy)) *injectHarness {
	t.Helper()
	api := &apiServer{}
	api.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		api.mu.Lock()
		api.reqs = append(api.reqs, seen{path: r.URL.Path, query: r.URL.RawQuery, host: r.Host, header: r.Header.Clone(), body: string(b)})
		api.mu.Unlock()
		if handler != nil {
			handler(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"type":"message","usage":{"input_tokens":12,"output_tokens":34}}`)
	}))
	api.StartTLS()
	t.Cleanup(api.Close)
	fk := &fakeKeys{rows: map[string]keys.Entry{
		"agentkernel-a": {Grant: grantA, Credentials: []keys.Credential{apiCredential("sk-real-a")}},
	}}
	h := newHarness(t, func(p *Proxy) {
		p.Grants = fakeGrants{
			clientA: {Sandbox: "a", Pod: "agentkernel-a", Rules: rules(t, "api.example.com", "other.example.com"), KeyGrant: grantA},
			clientB: {Sandbox: "b", Pod: "agentkernel-b", Rules: rules(t, "api.example.com"), KeyGrant: grantB},
		}
		p.Keys = fk
		p.UpstreamRootCAs = api.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		if configure != nil {
			configure(p)
		}
	})
	h.resolver.mu.Lock()
	h.resolver.answers["api.example.com"] = [][]netip.Addr{{netip.MustParseAddr(apiIP)}}
	h.resolver.answers["other.example.com"] = [][]netip.Addr{{netip.MustParseAddr(apiIP)}}
	h.resolver.mu.Unlock()
	h.dialer.mu.Lock()
	h.dialer.routes[apiIP+":443"] = strings.TrimPrefix(api.URL, "https://")
	h.dialer.mu.Unlock()
	return &injectHarness{harness: h, api: api, keys: fk}
}

// client sends requests to the proxy from a sandbox's address.
func (h *injectHarness) client(from netip.Addr) *http.Client {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, h.proxyAddr)
		},
		DisableKeepAlives: true,
	}}
}

// route sends a request for path (a route's path, or any) from a sandbox.
func (h *injectHarness) route(t *testing.T, from netip.Addr, method, path string, header http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+h.proxyAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	logged := len(h.log.lines(t))
	resp, err := h.client(from).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	// The proxy counts and logs a request once its handler returns, which
	// may be a moment after the client read the last byte: wait for the
	// request's one line, so what the test checks next is settled.
	waitFor(t, "the proxy's line for "+method+" "+path, func() bool { return len(h.log.lines(t)) > logged })
	return resp, string(b)
}

const messages = keys.RoutePrefix + "api.example.com/v1/messages"
