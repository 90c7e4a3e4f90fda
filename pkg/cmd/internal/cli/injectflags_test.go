package cli

import (
	"strings"
	"testing"
)

func TestParseInject(t *testing.T) {
	for in, want := range map[string]string{
		"OPENAI_API_KEY=api.openai.com":                      "Authorization|Bearer |OPENAI_BASE_URL",
		"OPENAI_API_KEY=API.OpenAI.com:authorization-bearer": "Authorization|Bearer |OPENAI_BASE_URL",
		"K=api.example.com:authorization":                    "Authorization||K_BASE_URL",
		"MY_TOKEN=api.example.com:x-api-key":                 "X-Api-Key||MY_BASE_URL",
	} {
		got, err := ParseInject(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if s := got.Header + "|" + got.Prefix + "|" + strings.Join(got.BaseURLVariables, ","); s != want {
			t.Errorf("%s: %s, want %s", in, s, want)
		}
	}
	for _, in := range []string{"", "K", "=h.example.com", "K=", "1K=api.example.com", "K=api.example.com:a b", "K=10.0.0.1", "K=api.example.com:443"} {
		if _, err := ParseInject(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

// --inject is typed by users: whatever it accepts is a valid injection.
func FuzzParseInject(f *testing.F) {
	f.Add("OPENAI_API_KEY=api.openai.com")
	f.Add("K=api.example.com:x-api-key")
	f.Add("K=*.example.com:authorization")
	f.Fuzz(func(t *testing.T, s string) {
		in, err := ParseInject(s)
		if err != nil {
			return
		}
		if err := in.Validate(); err != nil {
			t.Fatalf("%q parsed to an invalid injection: %v", s, err)
		}
		if strings.ContainsAny(in.Header+in.Prefix, "\r\n") {
			t.Fatalf("%q: header %q", s, in.Header)
		}
	})
}
