package keys

import (
	"strings"
	"testing"
)

func anthropic() Credential {
	return Credential{Injection: Injection{
		Variable: "ANTHROPIC_API_KEY", Host: "api.anthropic.com", Header: "X-Api-Key",
		Paths: []string{"/v1/"}, BaseURLVariables: []string{"ANTHROPIC_BASE_URL"},
	}, Key: "sk-ant-secret"}
}

func TestEntryRoundTrip(t *testing.T) {
	e := Entry{Grant: NewGrant(), Credentials: []Credential{anthropic()}}
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := got.For("api.anthropic.com")
	if !ok || c.Value() != "sk-ant-secret" || got.Grant != e.Grant {
		t.Fatalf("round trip: %+v", got)
	}
	if _, ok := got.For("api.openai.com"); ok {
		t.Fatal("a credential for a host the entry does not name")
	}
}

func TestEntryRefused(t *testing.T) {
	for name, mutate := range map[string]func(*Entry){
		"no grant":          func(e *Entry) { e.Grant = "" },
		"short grant":       func(e *Entry) { e.Grant = "abc" },
		"empty key":         func(e *Entry) { e.Credentials[0].Key = "" },
		"key with newline":  func(e *Entry) { e.Credentials[0].Key = "k\r\nX-Evil: 1" },
		"prefix newline":    func(e *Entry) { e.Credentials[0].Prefix = "Bearer\n" },
		"wildcard host":     func(e *Entry) { e.Credentials[0].Host = "*.anthropic.com" },
		"host with port":    func(e *Entry) { e.Credentials[0].Host = "api.anthropic.com:8443" },
		"address host":      func(e *Entry) { e.Credentials[0].Host = "10.0.0.1" },
		"upper-case host":   func(e *Entry) { e.Credentials[0].Host = "API.anthropic.com" },
		"header not canon":  func(e *Entry) { e.Credentials[0].Header = "x-api-key" },
		"header with colon": func(e *Entry) { e.Credentials[0].Header = "X-Api-Key:" },
		"relative path":     func(e *Entry) { e.Credentials[0].Paths = []string{"v1/"} },
		"dot-dot path":      func(e *Entry) { e.Credentials[0].Paths = []string{"/v1/../admin"} },
		"bad variable":      func(e *Entry) { e.Credentials[0].Variable = "1KEY" },
		"bad base variable": func(e *Entry) { e.Credentials[0].BaseURLVariables = []string{"A-B"} },
		"two for one host":  func(e *Entry) { e.Credentials = append(e.Credentials, e.Credentials[0]) },
		"too large":         func(e *Entry) { e.Credentials[0].Key = strings.Repeat("k", MaxEntryBytes) },
	} {
		e := Entry{Grant: NewGrant(), Credentials: []Credential{anthropic()}}
		mutate(&e)
		if _, err := Encode(e); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

func TestSplitRoute(t *testing.T) {
	for path, want := range map[string][2]string{
		"/agentkernel/inject/api.anthropic.com/v1/messages": {"api.anthropic.com", "/v1/messages"},
		"/agentkernel/inject/api.anthropic.com":             {"api.anthropic.com", "/"},
		"/agentkernel/inject/api.anthropic.com/":            {"api.anthropic.com", "/"},
	} {
		host, rest, ok := SplitRoute(path)
		if !ok || host != want[0] || rest != want[1] {
			t.Errorf("SplitRoute(%q) = %q %q %v", path, host, rest, ok)
		}
	}
	for _, path := range []string{"/", "/v1/messages", "/agentkernel/inject/", "/agentkernel/inject//v1", "/agentkernel/injectx/h/v1"} {
		if _, _, ok := SplitRoute(path); ok {
			t.Errorf("SplitRoute(%q) is a route", path)
		}
	}
	if got := BaseURL("10.96.0.9:3128", "api.anthropic.com"); got != "http://10.96.0.9:3128/agentkernel/inject/api.anthropic.com" {
		t.Errorf("BaseURL = %s", got)
	}
}

func TestCovers(t *testing.T) {
	in := anthropic().Injection
	if !in.Covers("/v1/messages") || in.Covers("/v2/messages") || in.Covers("/") {
		t.Error("paths /v1/ only")
	}
	in.Paths = nil
	if !in.Covers("/anything") {
		t.Error("no paths: every path")
	}
}

func TestGrantsDiffer(t *testing.T) {
	a, b := NewGrant(), NewGrant()
	if a == b || len(a) != 32 {
		t.Fatalf("grants %q %q", a, b)
	}
}
