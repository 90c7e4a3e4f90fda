package hosts

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means an error containing wantErr
		wantErr  string
	}{
		{in: "api.anthropic.com", want: "api.anthropic.com:443"},
		{in: "API.Anthropic.COM", want: "api.anthropic.com:443"},
		{in: "api.anthropic.com.", want: "api.anthropic.com:443"},
		{in: "registry.npmjs.org:80", want: "registry.npmjs.org:80"},
		{in: "*.githubusercontent.com", want: "*.githubusercontent.com:443"},
		{in: "*.Example.com.:8443", want: "*.example.com:8443"},
		{in: "bücher.de", want: "xn--bcher-kva.de:443"},
		{in: "xn--bcher-kva.de", want: "xn--bcher-kva.de:443"},
		{in: "*.bücher.de", want: "*.xn--bcher-kva.de:443"},
		{in: "ｅｘａｍｐｌｅ．ｃｏｍ", want: "example.com:443"}, // full-width forms fold
		{in: "localhost", want: "localhost:443"},     // a name: its addresses are judged when resolved
		{in: "203.0.113.7", want: "203.0.113.7:443"},
		{in: "203.0.113.0/24:8443", want: "203.0.113.0/24:8443"},
		{in: "10.0.0.0/8", want: "10.0.0.0/8:443"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0:443"},
		{in: "2001:db8::1", want: "[2001:db8::1]:443"},
		{in: "[2001:db8::1]:8443", want: "[2001:db8::1]:8443"},
		{in: "2001:db8::/32", want: "[2001:db8::/32]:443"},
		{in: "[2001:db8::/32]:80", want: "[2001:db8::/32]:80"},
		{in: "::ffff:203.0.113.7", want: "203.0.113.7:443"},
		{in: "[::ffff:203.0.113.0/120]:443", want: "203.0.113.0/24:443"},

		{in: "", wantErr: "empty"},
		{in: "example.com:", wantErr: "port"},
		{in: "example.com:0", wantErr: "port"},
		{in: "example.com:65536", wantErr: "port"},
		{in: "example.com:+443", wantErr: "port"},
		{in: "example.com:443x", wantErr: "port"},
		{in: "example.com:44 3", wantErr: "port"},
		{in: "exa mple.com", wantErr: "not allowed"},
		{in: "exa_mple.com", wantErr: "not allowed"},
		{in: "user@example.com", wantErr: "not allowed"},
		{in: "example.com/path", wantErr: "CIDR"},
		{in: "*", wantErr: "wildcard"},
		{in: "*.com", wantErr: "top-level domain"},
		{in: "a.*.example.com", wantErr: "wildcard"},
		{in: "*example.com", wantErr: "wildcard"},
		{in: "**.example.com", wantErr: "wildcard"},
		{in: "example..com", wantErr: "host name"},
		{in: "-example.com", wantErr: "host name"},
		{in: "127.1", wantErr: "number"},
		{in: "0x7f.0.0.1", wantErr: "number"},
		{in: "2130706433", wantErr: "number"},
		{in: "example.123", wantErr: "number"},
		{in: strings.Repeat("a", 64) + ".com", wantErr: "host name"},
		{in: strings.Repeat("a.", 130) + "com", wantErr: "host name"},
		{in: "10.0.0.5/8", wantErr: "did you mean 10.0.0.0/8"},
		{in: "127.0.0.1", wantErr: "loopback"},
		{in: "127.0.0.0/8", wantErr: "loopback"},
		{in: "169.254.169.254", wantErr: "link-local"},
		{in: "100.100.100.200", wantErr: "metadata"},
		{in: "::1", wantErr: "loopback"},
		{in: "[fe80::1%eth0]:443", wantErr: "zone"},
		{in: "fd00:ec2::254", wantErr: "metadata"},
		{in: "::ffff:169.254.169.254", wantErr: "link-local"},
		{in: "[2001:db8::1", wantErr: "']'"},
		{in: "[2001:db8::1]443", wantErr: "':PORT'"},
	} {
		r, err := ParseRule(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseRule(%q) = %v, %v; want an error saying %q", tc.in, r, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tc.in, err)
			continue
		}
		if r.String() != tc.want {
			t.Errorf("ParseRule(%q) = %s, want %s", tc.in, r, tc.want)
		}
		// The canonical form reads back to itself.
		if again, err := ParseRule(r.String()); err != nil || again != r {
			t.Errorf("ParseRule(%q) = %v, %v; want %v", r.String(), again, err, r)
		}
	}
}

func TestParseRuleErrorNamesTheFlag(t *testing.T) {
	_, err := ParseRule("example.com:0")
	if err == nil || !strings.HasPrefix(err.Error(), `--allow-host "example.com:0": `) {
		t.Fatalf("error %v does not name the flag and the value", err)
	}
}

func TestParseAuthority(t *testing.T) {
	for _, tc := range []struct {
		in      string
		def     uint16
		want    string
		wantErr string
	}{
		{in: "example.com:443", want: "example.com:443"},
		{in: "EXAMPLE.com.:443", want: "example.com:443"},
		{in: "bücher.de:443", want: "xn--bcher-kva.de:443"},
		{in: "203.0.113.7:443", want: "203.0.113.7:443"},
		{in: "[2001:db8::1]:443", want: "[2001:db8::1]:443"},
		{in: "[::ffff:203.0.113.7]:443", want: "203.0.113.7:443"},
		{in: "example.com", def: 80, want: "example.com:80"},
		{in: "[2001:db8::1]", def: 80, want: "[2001:db8::1]:80"},

		{in: "example.com", wantErr: "port is required"},
		{in: "", wantErr: "empty"},
		{in: "user@example.com:443", wantErr: "only a host"},
		{in: "user:pw@example.com:443", wantErr: "only a host"},
		{in: "*.example.com:443", wantErr: "only a host"},
		{in: "example.com/x:443", wantErr: "only a host"},
		{in: "[fe80::1%25eth0]:443", wantErr: "only a host"},
		{in: "2001:db8::1", def: 80, wantErr: "brackets"},
		{in: "[example.com]:443", wantErr: "IPv6"},
		{in: "[203.0.113.7]:443", wantErr: "IPv6"},
		{in: "example.com:0", wantErr: "port"},
		{in: "example.com:99999", wantErr: "port"},
		{in: "example.com:-1", wantErr: "port"},
		{in: "127.1:443", wantErr: "number"},
		{in: "0x7f000001:443", wantErr: "number"},
		{in: "exa\x00mple.com:443", wantErr: "not allowed"},
		{in: "exa\nmple.com:443", wantErr: "not allowed"},
		{in: strings.Repeat("a", 300) + ":443", wantErr: "too long"},
	} {
		got, err := ParseAuthority(tc.in, tc.def)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseAuthority(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseAuthority(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func mustRules(t *testing.T, specs ...string) []Rule {
	t.Helper()
	var rules []Rule
	for _, s := range specs {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	return rules
}

func TestMatch(t *testing.T) {
	rules := mustRules(t, "api.anthropic.com", "*.example.com", "registry.npmjs.org:80", "bücher.de", "203.0.113.0/24", "[2001:db8::/32]:8443")
	for _, tc := range []struct {
		target string
		want   string // the rule that grants it; "" for none
	}{
		{"api.anthropic.com:443", "api.anthropic.com:443"},
		{"API.ANTHROPIC.COM.:443", "api.anthropic.com:443"},
		{"api.anthropic.com:80", ""},                 // other port
		{"anthropic.com:443", ""},                    // parent of a name
		{"x.api.anthropic.com:443", ""},              // child of a plain name
		{"evilapi.anthropic.com:443", ""},            // shares a suffix, not a label
		{"a.example.com:443", "*.example.com:443"},   // one level down
		{"a.b.example.com:443", "*.example.com:443"}, // any depth
		{"example.com:443", ""},                      // the wildcard's own domain is not below it
		{"badexample.com:443", ""},                   // no label boundary
		{"example.com.evil.net:443", ""},
		{"registry.npmjs.org:80", "registry.npmjs.org:80"},
		{"registry.npmjs.org:443", ""},
		{"xn--bcher-kva.de:443", "xn--bcher-kva.de:443"},
		{"BÜCHER.de:443", "xn--bcher-kva.de:443"},
		{"203.0.113.9:443", "203.0.113.0/24:443"},
		{"[::ffff:203.0.113.9]:443", "203.0.113.0/24:443"},
		{"203.0.114.1:443", ""},
		{"[2001:db8::5]:8443", "[2001:db8::/32]:8443"},
		{"[2001:db8::5]:443", ""},
	} {
		target, err := ParseAuthority(tc.target, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.target, err)
		}
		r, ok := Match(rules, target)
		got := ""
		if ok {
			got = r.String()
		}
		if got != tc.want {
			t.Errorf("Match(%s) = %q, want %q", tc.target, got, tc.want)
		}
	}
}

// IP literals are granted only by a block, never by a name, even when the
// name's own addresses include it.
func TestNameRuleNeverGrantsAnAddress(t *testing.T) {
	rules := mustRules(t, "example.com", "*.example.com")
	target, err := ParseAuthority("93.184.216.34:443", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := Match(rules, target); ok {
		t.Fatalf("an IP literal matched the name rule %s", r)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want Class
	}{
		{"93.184.216.34", Public},
		{"8.8.8.8", Public},
		{"2606:4700::1111", Public},
		{"64:ff9b::808:808", Public}, // NAT64 of 8.8.8.8
		{"::ffff:8.8.8.8", Public},

		{"10.1.2.3", Private},
		{"172.16.0.1", Private},
		{"172.31.255.255", Private},
		{"192.168.1.1", Private},
		{"100.64.0.1", Private},  // CGNAT
		{"100.127.0.1", Private}, // CGNAT
		{"198.18.0.1", Private},
		{"192.0.2.1", Private},
		{"fd12:3456::1", Private},
		{"fc00::1", Private},
		{"2001:db8::1", Private},
		{"64:ff9b::a00:1", Private},         // NAT64 of 10.0.0.1
		{"::ffff:10.0.0.1", Private},        // IPv4-mapped
		{"::ffff:0:a00:1", Private},         // IPv4-translated
		{"2002:a00:1::1", Private},          // 6to4 of 10.0.0.1
		{"2002:808:808::1", Private},        // 6to4 of a public address: still hidden
		{"2001:0:4136:e378::1", Private},    // Teredo
		{"64:ff9b:1:808:8:800::", Private},  // local-use NAT64 of 8.8.8.8
		{"64:ff9b:1:a9fe:a9:fe00::", Never}, // local-use NAT64 of the metadata address

		{"127.0.0.1", Never},
		{"127.255.255.254", Never},
		{"0.0.0.0", Never},
		{"169.254.169.254", Never}, // AWS, GCP, Azure, OCI metadata
		{"169.254.170.2", Never},   // ECS task metadata
		{"100.100.100.200", Never}, // Alibaba metadata, inside CGNAT
		{"192.0.0.192", Never},     // OCI metadata, inside IETF assignments
		{"224.0.0.1", Never},
		{"255.255.255.255", Never},
		{"::", Never},
		{"::1", Never},
		{"::127.0.0.1", Never}, // IPv4-compatible
		{"fe80::1", Never},
		{"fe80::1%eth0", Never},
		{"ff02::1", Never},
		{"fd00:ec2::254", Never},    // AWS metadata over IPv6, inside ULA
		{"::ffff:127.0.0.1", Never}, // IPv4-mapped loopback
		{"::ffff:169.254.169.254", Never},
		{"64:ff9b::a9fe:a9fe", Never}, // NAT64 of the metadata address
		{"64:ff9b::7f00:1", Never},    // NAT64 of loopback
		{"2002:7f00:1::1", Never},     // 6to4 of loopback
		{"2002:a9fe:a9fe::", Never},   // 6to4 of metadata
	} {
		got, why := Classify(netip.MustParseAddr(tc.addr))
		if got != tc.want {
			t.Errorf("Classify(%s) = %s (%s), want %s", tc.addr, got, why, tc.want)
		}
	}
	if c, _ := Classify(netip.Addr{}); c != Never {
		t.Errorf("the zero Addr is %s", c)
	}
}

func TestPermitted(t *testing.T) {
	opened := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10::/64")}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"93.184.216.34", true},
		{"10.244.3.4", true},
		{"::ffff:10.244.3.4", true},
		{"fd00:10::5", true},
		{"10.245.0.1", false},
		{"192.168.0.1", false},
		{"127.0.0.1", false},
		{"169.254.169.254", false},
	} {
		if got, why := Permitted(netip.MustParseAddr(tc.addr), opened); got != tc.want {
			t.Errorf("Permitted(%s) = %v (%s), want %v", tc.addr, got, why, tc.want)
		}
	}
	// Opening a range never opens what is Never reachable within it.
	if ok, _ := Permitted(netip.MustParseAddr("127.0.0.1"), []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}); ok {
		t.Error("an opened 0.0.0.0/0 let loopback through")
	}
}

// The NetworkPolicy exceptions are exactly the ranges Classify refuses: no
// public address excluded, no non-public one let through.
func TestNonPublicPrefixesAgreeWithClassify(t *testing.T) {
	v4, v6 := NonPublicPrefixes()
	for _, s := range []string{"93.184.216.34", "10.0.0.1", "127.0.0.1", "169.254.169.254", "100.64.0.1", "198.18.0.1", "8.8.8.8", "240.0.0.1"} {
		a := netip.MustParseAddr(s)
		c, _ := Classify(a)
		if inAny(a, v4) != (c != Public) {
			t.Errorf("%s: excepted by the policy = %v, but Classify says %s", s, inAny(a, v4), c)
		}
	}
	for _, s := range []string{"2606:4700::1111", "fd00::1", "fe80::1", "::1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b::808:808", "2001:db8::1", "ff02::1"} {
		a := netip.MustParseAddr(s)
		c, _ := Classify(a)
		if inAny(a, v6) != (c != Public) {
			t.Errorf("%s: excepted by the policy = %v, but Classify says %s", s, inAny(a, v6), c)
		}
	}
	for _, p := range append(v4, v6...) {
		if p != p.Masked() {
			t.Errorf("%s is not a canonical CIDR", p)
		}
	}
}
