package egress

import (
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

func TestRoutePath(t *testing.T) {
	for raw, want := range map[string][2]string{
		"/agentkernel/inject/api.anthropic.com/v1/messages":  {"api.anthropic.com", "/v1/messages"},
		"/agentkernel/inject/api.openai.com/v1/responses/":   {"api.openai.com", "/v1/responses/"},
		"/agentkernel/inject/api.openai.com":                 {"api.openai.com", "/"},
		"/agentkernel/inject/api.openai.com/v1/a:b;c=d@e~f+": {"api.openai.com", "/v1/a:b;c=d@e~f+"},
	} {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatal(err)
		}
		host, rest, err := routePath(u)
		if err != nil || host != want[0] || rest != want[1] {
			t.Errorf("routePath(%q) = %q %q %v", raw, host, rest, err)
		}
	}
	for _, raw := range []string{
		"/agentkernel/inject/api.openai.com/v1/../admin", "/agentkernel/inject/api.openai.com/v1/..",
		"/agentkernel/inject/api.openai.com/v1/%2e%2e/admin", "/agentkernel/inject/api.openai.com/v1%2Fx",
		"/agentkernel/inject/api.openai.com/v1/%20", "/agentkernel/inject/api.openai.com//v1",
		"/agentkernel/inject/api.openai.com/./v1", "/agentkernel/inject/api.openai.com/v1\\..\\x",
		"/agentkernel/inject/../inject/api.openai.com/v1", "/agentkernel/inject/API.openai.com/v1",
		"/agentkernel/inject/10.0.0.1/v1", "/agentkernel/inject/api.openai.com:443/v1",
		"/agentkernel/inject/*.openai.com/v1", "/agentkernel/inject/", "/agentkernel/inject//v1",
	} {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			continue // refused before the proxy sees it
		}
		if host, rest, err := routePath(u); err == nil {
			t.Errorf("routePath(%q) = %q %q, want refused", raw, host, rest)
		}
	}
}

// What routePath lets through is exactly what the API gets and the path
// rule judged: no escapes, no dot segments, no empty segments, one
// canonical host.
func FuzzRoutePath(f *testing.F) {
	f.Add("/agentkernel/inject/api.anthropic.com/v1/messages?beta=true")
	f.Add("/agentkernel/inject/api.anthropic.com/v1/%2e%2e/x")
	f.Add("/agentkernel/inject/api.anthropic.com/v1/..\\x")
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		host, rest, err := routePath(u)
		if err != nil {
			return
		}
		if strings.ContainsAny(rest, "%\\\x00") || strings.Contains(rest, "//") || !strings.HasPrefix(rest, "/") {
			t.Fatalf("routePath(%q) let through %q", raw, rest)
		}
		if c := path.Clean(rest); c != rest && c+"/" != rest {
			t.Fatalf("routePath(%q) let through %q, which cleans to %q", raw, rest, c)
		}
		if keys.RoutePrefix+host+rest != u.Path && keys.RoutePrefix+host+rest != u.Path+"/" {
			t.Fatalf("routePath(%q) = %q %q, not the request's path %q", raw, host, rest, u.Path)
		}
		if strings.ContainsAny(host, "/:*%") || strings.ToLower(host) != host {
			t.Fatalf("routePath(%q) host %q", raw, host)
		}
	})
}
