package hosts

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// ParseAuthority reads what a sandbox sends the proxy. Whatever it accepts
// must be canonical and stable, and must name a host a rule could match.
func FuzzParseAuthority(f *testing.F) {
	for _, s := range []string{
		"example.com:443", "EXAMPLE.com.:80", "[2001:db8::1]:443", "203.0.113.7:8443",
		"bücher.de:443", "xn--bcher-kva.de:443", "127.1:80", "[::ffff:127.0.0.1]:443",
		"user@host:443", "a..b:1", "[fe80::1%25eth0]:443", "\x00:1", "ｅｘａｍｐｌｅ．ｃｏｍ:443",
	} {
		f.Add(s, uint16(0))
		f.Add(s, uint16(80))
	}
	f.Fuzz(func(t *testing.T, s string, def uint16) {
		target, err := ParseAuthority(s, def)
		if err != nil {
			return
		}
		if target.Port == 0 {
			t.Fatalf("%q: accepted with port 0", s)
		}
		if (target.Name == "") == !target.Addr.IsValid() {
			t.Fatalf("%q: want exactly one of name and address, got %+v", s, target)
		}
		if target.Name != "" {
			if len(target.Name) > MaxNameLength || strings.ContainsAny(target.Name, "*:/@%[] \t\r\n") || !utf8.ValidString(target.Name) {
				t.Fatalf("%q: name %q is not canonical", s, target.Name)
			}
			for i := 0; i < len(target.Name); i++ {
				if c := target.Name[i]; !isLDH(c) && c != '.' || c >= 'A' && c <= 'Z' {
					t.Fatalf("%q: name %q has %q", s, target.Name, c)
				}
			}
		}
		if target.Addr.Is4In6() || target.Addr.Zone() != "" {
			t.Fatalf("%q: address %s is not canonical", s, target.Addr)
		}
		// Canonical: its own string form parses to itself.
		again, err := ParseAuthority(target.String(), 0)
		if err != nil || again != target {
			t.Fatalf("%q -> %s -> %+v, %v", s, target, again, err)
		}
		// Every accepted name is matched by the rule naming it.
		if target.Name != "" {
			rule, err := ParseRule(target.String())
			if err != nil {
				t.Fatalf("%q: the target %s is not a valid rule: %v", s, target, err)
			}
			if _, ok := Match([]Rule{rule}, target); !ok {
				t.Fatalf("%q: rule %s does not match its own target", s, rule)
			}
		}
	})
}

// ParseRule reads grants from flags and from Pod annotations. Whatever it
// accepts has a canonical form that reads back to the same rule.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"api.anthropic.com", "*.example.com:8443", "203.0.113.0/24", "[2001:db8::/32]:443",
		"bücher.de", "2001:db8::1", "10.0.0.5/8", "*.com", "127.0.0.1", "a.*.b", "[::ffff:1.2.3.0/120]:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			return
		}
		if r.Port == 0 || (r.Name == "") == !r.Prefix.IsValid() {
			t.Fatalf("%q: malformed rule %+v", s, r)
		}
		if r.Prefix.IsValid() && (r.Prefix != r.Prefix.Masked() || r.Prefix.Addr().Is4In6()) {
			t.Fatalf("%q: prefix %s is not canonical", s, r.Prefix)
		}
		again, err := ParseRule(r.String())
		if err != nil || again != r {
			t.Fatalf("%q -> %s -> %+v, %v", s, r, again, err)
		}
		if len(r.String()) > MaxRuleLength {
			t.Fatalf("%q: canonical form %q longer than %d", s, r, MaxRuleLength)
		}
	})
}
