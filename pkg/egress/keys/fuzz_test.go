package keys

import (
	"strings"
	"testing"
)

// The table is written by whoever may patch one Secret: an entry is
// untrusted input to the proxy. What decodes must re-encode, and a key
// that decodes can never break a header line.
func FuzzDecode(f *testing.F) {
	b, _ := Encode(Entry{Grant: NewGrant(), Credentials: []Credential{anthropic()}})
	f.Add(b)
	f.Add([]byte(`{"grant":"0123456789abcdef0123","credentials":[{"variable":"K","host":"h.example","header":"Authorization","prefix":"Bearer ","key":"k"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		for _, c := range e.Credentials {
			if strings.ContainsAny(c.Value(), "\r\n") || strings.ContainsAny(c.Header, "\r\n :") {
				t.Fatalf("a decoded credential breaks a header: %q: %q", c.Header, c.Value())
			}
		}
		if _, err := Encode(e); err != nil {
			t.Fatalf("decoded but does not encode: %v", err)
		}
	})
}

func FuzzSplitRoute(f *testing.F) {
	f.Add("/agentkernel/inject/api.anthropic.com/v1/messages")
	f.Add("/agentkernel/inject/")
	f.Fuzz(func(t *testing.T, path string) {
		host, rest, ok := SplitRoute(path)
		if !ok {
			return
		}
		if host == "" || strings.Contains(host, "/") || !strings.HasPrefix(rest, "/") {
			t.Fatalf("SplitRoute(%q) = %q %q", path, host, rest)
		}
		if RoutePrefix+host+rest != path && RoutePrefix+host+rest != path+"/" {
			t.Fatalf("SplitRoute(%q) lost bytes: %q %q", path, host, rest)
		}
	})
}
