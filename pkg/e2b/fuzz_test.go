package e2b

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Every parser of a client's input, fuzzed: none may panic, and what they
// accept must be what they were given.

func FuzzParseCursor(f *testing.F) {
	f.Add(cursor{T: time.Unix(1700000000, 5).UTC(), ID: "e2b-abc"}.String())
	f.Add("")
	f.Add("eyJ0IjoiYSJ9")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil {
			if e := asError(err); e.Status != http.StatusBadRequest {
				t.Fatalf("a bad token gave status %d", e.Status)
			}
			return
		}
		if c.ID == "" {
			t.Fatalf("accepted %q with no ID", s)
		}
	})
}

func FuzzParseMetadataFilter(f *testing.F) {
	f.Add("team=blue%2520green&n=1")
	f.Add("%zz=1")
	f.Add("a=b;c")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMetadataFilter(&s)
		if err != nil {
			if e := asError(err); e.Status != http.StatusBadRequest {
				t.Fatalf("a bad filter gave status %d", e.Status)
			}
			return
		}
		if len(m) > len(s) {
			t.Fatalf("%d pairs from %d bytes", len(m), len(s))
		}
	})
}

func FuzzReadAPIKeys(f *testing.F) {
	f.Add(testKey + "\n# c\n")
	f.Add("e2b_\n")
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := ReadAPIKeys(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, k := range keys {
			if !apiKeyPattern.MatchString(k) || len(k) < len("e2b_")+minKeyHex {
				t.Fatalf("accepted key %q", k)
			}
		}
	})
}

// FuzzControlPlane sends any body to any sandbox route: the answer is
// JSON in E2B's shape or a success, never a panic or a 5xx.
func FuzzControlPlane(f *testing.F) {
	cs := fakecluster.New()
	spec := sandbox.NewSpec("e2b", testNamespace)
	spec.TTL = time.Hour
	srv, err := New(Options{Namespace: testNamespace, Clientset: cs, Spec: spec, APIKeys: []string{testKey}, Envd: &envdProbe{}, StartTimeout: time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{`{"templateID":"nope"}`, `{"timeout": 5}`, `[]`, `{"metadata": {"a": 1}}`, "\x00"} {
		f.Add("POST", "/sandboxes", seed)
		f.Add("POST", "/sandboxes/x/timeout", seed)
		f.Add("GET", "/v2/sandboxes?limit=1&nextToken="+seed, "")
	}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") || method == "" || strings.ContainsAny(method, " \r\n\t/") {
			return // not a request line
		}
		var in api.NewSandbox
		if json.Unmarshal([]byte(body), &in) == nil && (in.TemplateID == "" || in.TemplateID == DefaultTemplate) {
			return // a create that would start a sandbox (a fake cluster's never starts)
		}
		req, err := http.NewRequest(method, path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("X-API-Key", testKey)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusNotImplemented {
			t.Fatalf("%s %s %q: status %d %s", method, path, body, rec.Code, rec.Body)
		}
	})
}
