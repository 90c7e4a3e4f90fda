//go:build linux

package agentmock

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
)

// The agents behind the namespace's egress proxy, as in a sandbox with
// --allow-host: the model API's host is a name only the proxy resolves, the
// proxy is the product's own (pkg/egress), and the agent finds it by the
// variables a fenced sandbox gets.

// modelHost is the mock's name: unknown to any resolver but the proxy's.
const modelHost = "model.agentmock.test"

// modelAddr is what the proxy resolves modelHost to: a public address (the
// proxy refuses private ones), dialled as the mock.
var modelAddr = netip.MustParseAddr("93.184.216.34")

type oneName struct{}

func (oneName) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host == modelHost {
		return []netip.Addr{modelAddr}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

type loopbackGrant struct{ rules []hosts.Rule }

func (g loopbackGrant) Lookup(ip netip.Addr) (egress.Grant, error) {
	if !ip.IsLoopback() {
		return egress.Grant{}, errors.New("not the test's client")
	}
	return egress.Grant{Sandbox: "agent", Pod: "agentkernel-agent", Rules: g.rules}, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// egressProxy serves the product's proxy granting allow (--allow-host
// rules), with modelHost:80 dialled as mockURL. It returns the proxy's URL
// and its decision log.
func egressProxy(t *testing.T, mockURL string, allow ...string) (string, *lockedBuffer) {
	t.Helper()
	var rules []hosts.Rule
	for _, a := range allow {
		r, err := hosts.ParseRule(a)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	mock := strings.TrimPrefix(mockURL, "http://")
	log := &lockedBuffer{}
	p := &egress.Proxy{
		Grants:   loopbackGrant{rules},
		Resolver: oneName{},
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			if address != netip.AddrPortFrom(modelAddr, 80).String() {
				return nil, errors.New("the test dials only the model's address, not " + address)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, mock)
		},
		Log: slog.New(slog.NewJSONHandler(log, nil)),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := p.Server()
	go func() { _ = srv.Serve(p.Listener(ln)) }()
	t.Cleanup(func() {
		_ = srv.Close()
		t.Logf("proxy log:\n%s", log)
	})
	return "http://" + ln.Addr().String(), log
}

// proxyEnv is what a sandbox with --allow-host has (pkg/sandbox's
// egressProxyEnv): the proxy in both cases of both variables, loopback
// exempt, and Node told to use them.
func proxyEnv(proxyURL string) []string {
	return []string{
		"HTTPS_PROXY=" + proxyURL, "https_proxy=" + proxyURL, "HTTP_PROXY=" + proxyURL, "http_proxy=" + proxyURL,
		"NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1", "NODE_USE_ENV_PROXY=1",
	}
}

// behindProxy is agent's run in a fresh repository against a mock at
// modelHost, reached only through the product's egress proxy with allow
// granted: the mock, the repository, the proxy's log, and the run.
func behindProxy(t *testing.T, agent string, allow string) (*Server, string, *lockedBuffer, func() cliRun) {
	t.Helper()
	bin := needCLI(t, agent)
	dir, home := repo(t)
	m := New(Options{Claude: ClaudeScript(dir), Codex: CodexScript()})
	ts := httptest.NewServer(m)
	t.Cleanup(ts.Close)
	proxyURL, log := egressProxy(t, ts.URL, allow)
	base := "http://" + modelHost
	return m, dir, log, func() cliRun {
		if agent == "claude" {
			return runCLI(t, dir, append(claudeEnv(home, base), proxyEnv(proxyURL)...), bin, claudeArgs()...)
		}
		return runCLI(t, dir, append(codexEnv(home), proxyEnv(proxyURL)...), bin, codexArgs(base)...)
	}
}

func TestThroughTheEgressProxy(t *testing.T) {
	for _, agent := range []string{"claude", "codex"} {
		t.Run(agent, func(t *testing.T) {
			m, dir, log, run := behindProxy(t, agent, modelHost+":80")
			r := run()
			if agent == "claude" {
				checkPlayed(t, m, Anthropic, len(ClaudeScript(dir)), r, dir, "X-Api-Key", "fake-anthropic-key")
			} else {
				checkPlayed(t, m, OpenAI, len(CodexScript()), r, dir, "Authorization", "Bearer fake-openai-key")
			}
			if !strings.Contains(log.String(), modelHost) {
				t.Errorf("the proxy logged no request for %s: the agent did not go through it", modelHost)
			}
			for _, req := range m.Requests() {
				if req.Host != modelHost {
					t.Errorf("%s %s came for host %q, want %q", req.Method, req.Path, req.Host, modelHost)
				}
			}
		})
	}
}

// TestModelHostNotAllowed: a sandbox whose --allow-host leaves out the
// model's host gets the proxy's refusal: the agent fails at once, saying
// something, and never hangs.
func TestModelHostNotAllowed(t *testing.T) {
	for _, agent := range []string{"claude", "codex"} {
		t.Run(agent, func(t *testing.T) {
			// Claude Code's own retries left on: a refusal is not retried.
			m, _, log, run := behindProxy(t, agent, "registry.npmjs.org") // not the model's host
			r := run()
			if r.code == 0 {
				t.Errorf("%s exited 0 without reaching its model", agent)
			}
			if n := len(m.Requests()); n != 0 {
				t.Errorf("the mock saw %d requests through a proxy that was to refuse them", n)
			}
			if !strings.Contains(log.String(), modelHost) {
				t.Errorf("the proxy logged no refusal for %s", modelHost)
			}
			if strings.TrimSpace(r.stdout+r.stderr) == "" {
				t.Errorf("%s failed without a word", agent)
			}
		})
	}
}
