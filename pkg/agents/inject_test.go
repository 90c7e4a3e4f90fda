package agents

import (
	"strings"
	"testing"
)

func TestInjectParsed(t *testing.T) {
	base, err := Parse(EmbeddedSource, embedded)
	if err != nil {
		t.Fatal(err)
	}
	set, err := Merge(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	claude, _ := set.Get("claude")
	api, ok := claude.Injection("ANTHROPIC_API_KEY")
	if !ok || api.Host != "api.anthropic.com" || api.Header != "X-Api-Key" || api.Prefix != "" ||
		strings.Join(api.Paths, ",") != "/v1/" || strings.Join(api.BaseURLVariables, ",") != "ANTHROPIC_BASE_URL" {
		t.Errorf("claude's API key: %+v %v", api, ok)
	}
	oauth, ok := claude.Injection("CLAUDE_CODE_OAUTH_TOKEN")
	if !ok || oauth.Header != "Authorization" || oauth.Prefix != "Bearer " {
		t.Errorf("claude's OAuth token: %+v %v", oauth, ok)
	}
	codex, _ := set.Get("codex")
	if len(codex.Inject) != 0 {
		t.Errorf("codex injects, yet ignores $OPENAI_BASE_URL: %+v", codex.Inject)
	}
}

func TestInjectErrors(t *testing.T) {
	for name, c := range map[string]struct{ yaml, want string }{
		"wildcard host": {"inject:\n      K: {host: '*.example.com', header: x}",
			`f.yaml:6: agents.a.inject.K: inject K: host "*.example.com" must be one host name`},
		"bad header": {"inject:\n      K: {host: api.example.com, header: 'a b'}",
			`f.yaml:6: agents.a.inject.K: inject K: header "a b" is not a canonical header name`},
		"no header": {"inject:\n      K: {host: api.example.com}",
			`f.yaml:6: agents.a.inject.K: inject K: header "" is not a canonical header name`},
		"bad path": {"inject:\n      K: {host: api.example.com, header: x, paths: [v1/]}",
			`f.yaml:6: agents.a.inject.K: inject K: path "v1/" must start with /`},
		"unknown field": {"inject:\n      K: {host: api.example.com, hdr: x}",
			`f.yaml:6: agents.a.inject.K.hdr: unknown field; an inject entry has host, header, prefix, paths and baseURLVariables`},
		"not a mapping": {"inject: [K]",
			`f.yaml:5: agents.a.inject: want a mapping`},
		"base URL variable": {"inject:\n      K: {host: api.example.com, header: x, baseURLVariables: [A-B]}",
			`f.yaml:6: agents.a.inject.K: inject K: base URL variable "A-B" is not an environment variable name`},
		"prefix list": {"inject:\n      K: {host: api.example.com, header: x, prefix: [a]}",
			`f.yaml:6: agents.a.inject.K.prefix: want a single value, not a list`},
	} {
		_, err := Parse("f.yaml", []byte("agents:\n  a:\n    image: x\n    credentials: {anyOf: [K]}\n    "+c.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %s", name, err, c.want)
		}
	}
}

// An injected variable must be a credential of the merged preset: the
// check names the file and line of the inject field.
func TestInjectNotACredential(t *testing.T) {
	over, err := Parse("mine.yaml", []byte("agents:\n  claude:\n    credentials: {required: [OTHER]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := Parse(EmbeddedSource, embedded)
	_, err = Merge(base, over)
	if err == nil || !strings.Contains(err.Error(), "agents.claude.inject: ANTHROPIC_API_KEY is injected but not one of the preset's credentials") {
		t.Fatalf("got %v", err)
	}
	// An override that drops inject (inject: null) keeps its credentials in the Secret.
	over, _ = Parse("mine.yaml", []byte("agents:\n  claude:\n    credentials: {required: [OTHER]}\n    inject: null\n"))
	set, err := Merge(base, over)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := set.Get("claude"); len(c.Inject) != 0 {
		t.Errorf("inject: null kept %+v", c.Inject)
	}
}
