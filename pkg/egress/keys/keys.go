// Package keys is the model-key table: what a sandbox's agent may spend
// through the namespace's egress proxy without the key ever entering the
// sandbox. The plugin writes one entry per sandbox Pod into one Secret of
// the namespace (SecretName) when it creates or claims the sandbox, and
// marks the Pod with the entry's grant (GrantAnnotation); the proxy, which
// may read that one Secret and no other, adds the key to requests the Pod
// sends to its base URLs (RoutePrefix) while the Pod lives and carries the
// same grant. This package is the format both sides agree on; it imports
// nothing of ours but the host rules.
package keys

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
)

const (
	// SecretName is the namespace's key table: data[pod name] is that
	// Pod's Entry as JSON. `egress install` creates it empty; the proxy's
	// Role may get, list and watch this name only.
	SecretName = "agentkernel-egress-keys"
	// GrantAnnotation on a sandbox Pod holds its entry's Grant. An entry
	// whose grant is not the Pod's (a sandbox of the same name made
	// later, a warm member claimed again) is never used.
	GrantAnnotation = "agentkernel/key-grant"
	// UsageConfigMapName is where the proxy publishes what each Pod
	// spent: data[pod name] is a Usage as JSON.
	UsageConfigMapName = "agentkernel-egress-usage"
	// RoutePrefix starts the path of every base URL the sandbox is given:
	// http://PROXY/agentkernel/inject/HOST/… is forwarded to
	// https://HOST/… with the key added.
	RoutePrefix = "/agentkernel/inject/"
	// Placeholder is the value the sandbox sees in a key's variable: CLIs
	// that refuse to start without a key start, and it is worth nothing.
	Placeholder = "agentkernel-proxy-adds-the-key"
)

// MaxEntryBytes bounds one entry as stored; the Secret's 1 MiB bounds the
// table (about two thousand sandboxes of a few keys each per namespace).
const MaxEntryBytes = 8 << 10

// Injection says how one credential is used, without the key: by a preset
// (agents.yaml's inject) or by --inject.
type Injection struct {
	// Variable is the caller's environment variable that holds the key,
	// and the one the sandbox sees Placeholder in.
	Variable string `json:"variable"`
	// Host is the API's host name (canonical, as hosts.ParseRule gives
	// it); the proxy reaches it over TLS on port 443.
	Host string `json:"host"`
	// Header is the request header that carries the key, canonical
	// (http.CanonicalHeaderKey): "X-Api-Key", "Authorization".
	Header string `json:"header"`
	// Prefix goes before the key in Header's value: "Bearer " or "".
	Prefix string `json:"prefix,omitempty"`
	// Paths are the path prefixes the key may be sent to ("/v1/"); none:
	// every path of Host.
	Paths []string `json:"paths,omitempty"`
	// BaseURLVariables are the variables the agent reads its API's base
	// URL from; each is set to BaseURL(proxy, Host).
	BaseURLVariables []string `json:"baseURLVariables,omitempty"`
}

// Credential is an Injection with its key, as the table holds it.
type Credential struct {
	Injection
	Key string `json:"key"`
}

// Entry is one Pod's row of the table.
type Entry struct {
	Grant       string       `json:"grant"`
	Credentials []Credential `json:"credentials"`
}

// Usage is what one Pod spent through the proxy, per API host.
type Usage struct {
	Hosts map[string]HostUsage `json:"hosts"`
}

// HostUsage counts one Pod's requests to one API. Tokens are what the
// API's own responses said (usage fields), 0 when it said nothing.
type HostUsage struct {
	Requests     int64 `json:"requests"`
	Refused      int64 `json:"refused,omitempty"`
	BytesSent    int64 `json:"bytesSent"`
	BytesGot     int64 `json:"bytesReceived"`
	InputTokens  int64 `json:"inputTokens,omitempty"`
	OutputTokens int64 `json:"outputTokens,omitempty"`
}

// CredentialHeaders are the headers the proxy removes from every request
// a sandbox sends through a route, whatever the grant says: a sandbox
// never chooses the credential its request is sent with.
var CredentialHeaders = []string{
	"Authorization", "Proxy-Authorization", "X-Api-Key", "Api-Key",
	"X-Goog-Api-Key", "Cookie", "Anthropic-Api-Key", "Openai-Api-Key",
}

// NewGrant is a fresh grant: 128 random bits, hex.
func NewGrant() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// BaseURL is the base URL a sandbox is given for host: proxy is the
// proxy's "address:port" as the sandbox reaches it.
func BaseURL(proxy, host string) string {
	return "http://" + proxy + RoutePrefix + host
}

// SplitRoute reads a request path the proxy got: the API host it names and
// the path to send there ("/" at least). ok is false for a path that is not
// a route.
func SplitRoute(path string) (host, rest string, ok bool) {
	tail, found := strings.CutPrefix(path, RoutePrefix)
	if !found {
		return "", "", false
	}
	host, rest, _ = strings.Cut(tail, "/")
	if host == "" {
		return "", "", false
	}
	return host, "/" + rest, true
}

// Value is the header value that carries key.
func (c Credential) Value() string { return c.Prefix + c.Key }

// Covers reports whether the credential may be sent with a request for
// path (already cleaned: no "..", no "//", no escapes).
func (in Injection) Covers(path string) bool {
	if len(in.Paths) == 0 {
		return true
	}
	for _, p := range in.Paths {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// Validate checks an Injection as a preset, a flag or the table gives it.
func (in Injection) Validate() error {
	if in.Variable == "" || !isEnvName(in.Variable) {
		return fmt.Errorf("inject: %q is not an environment variable name", in.Variable)
	}
	r, err := hosts.ParseRule(in.Host)
	if err != nil {
		return fmt.Errorf("inject %s: host: %w", in.Variable, err)
	}
	if r.Name == "" || r.Wildcard() || r.Name != in.Host {
		return fmt.Errorf("inject %s: host %q must be one host name, canonical (e.g. api.example.com), no port", in.Variable, in.Host)
	}
	if in.Header == "" || http.CanonicalHeaderKey(in.Header) != in.Header || strings.ContainsAny(in.Header, " :\r\n") {
		return fmt.Errorf("inject %s: header %q is not a canonical header name (e.g. X-Api-Key)", in.Variable, in.Header)
	}
	if strings.ContainsAny(in.Prefix, "\r\n") {
		return fmt.Errorf("inject %s: the header's prefix holds a line break", in.Variable)
	}
	for _, p := range in.Paths {
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") || strings.Contains(p, "//") {
			return fmt.Errorf("inject %s: path %q must start with / and hold no .. or //", in.Variable, p)
		}
	}
	for _, v := range in.BaseURLVariables {
		if !isEnvName(v) {
			return fmt.Errorf("inject %s: base URL variable %q is not an environment variable name", in.Variable, v)
		}
	}
	return nil
}

func isEnvName(s string) bool {
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// Encode is an entry as the table stores it.
func Encode(e Entry) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEntryBytes {
		return nil, fmt.Errorf("inject: the entry is %d bytes, over %d", len(b), MaxEntryBytes)
	}
	return b, nil
}

// Decode reads one entry of the table. Whoever may patch the table may
// write anything there: an entry that does not validate is not used.
func Decode(b []byte) (Entry, error) {
	if len(b) > MaxEntryBytes {
		return Entry{}, fmt.Errorf("entry of %d bytes, over %d", len(b), MaxEntryBytes)
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("entry: %w", err)
	}
	return e, e.validate()
}

func (e Entry) validate() error {
	if len(e.Grant) < 16 {
		return errors.New("entry: the grant is missing or too short")
	}
	seen := map[string]bool{}
	for _, c := range e.Credentials {
		if err := c.Validate(); err != nil {
			return err
		}
		if c.Key == "" || strings.ContainsAny(c.Key, "\r\n\x00") {
			return fmt.Errorf("inject %s: the key is empty or holds a line break", c.Variable)
		}
		if seen[c.Host] {
			return fmt.Errorf("inject %s: a second credential for %s", c.Variable, c.Host)
		}
		seen[c.Host] = true
	}
	return nil
}

// For is the credential of e for host, if any.
func (e Entry) For(host string) (Credential, bool) {
	for _, c := range e.Credentials {
		if c.Host == host {
			return c, true
		}
	}
	return Credential{}, false
}
