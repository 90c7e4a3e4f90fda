// Package hosts is the vocabulary of egress by host name: the rules a user
// grants a sandbox (--allow-host api.example.com, *.example.com:8443,
// 203.0.113.0/24), the targets a sandbox asks the egress proxy for (the
// authority of a CONNECT or an absolute URL: untrusted input), how the two
// match, and which addresses a proxy may never dial.
//
// It imports nothing of Kubernetes, so both the sandbox's object shapes and
// the proxy use it.
package hosts

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxNameLength is the longest host name (RFC 1035, without the root dot).
const MaxNameLength = 253

// lookup canonicalises names as a resolver would see them: UTS #46 mapping
// (case folding, full-width forms), Punycode for non-ASCII labels, STD3
// rules (letters, digits, hyphens), and DNS lengths. Rules and targets go
// through the same profile, so matching compares like with like.
var lookup = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.VerifyDNSLength(true),
	idna.StrictDomainName(true),
)

// canonicalName returns the ASCII, lower-case form of a host name without
// its trailing root dot, or why it is not a host name.
func canonicalName(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty host name")
	}
	if len(s) > 4*MaxNameLength {
		return "", errors.New("host name too long")
	}
	if !utf8.ValidString(s) {
		return "", errors.New("host name is not valid UTF-8")
	}
	// One trailing dot is the DNS root: "example.com." is "example.com".
	s = strings.TrimSuffix(s, ".")
	for _, r := range s {
		// UTS #46 would map some of these (full stops in other scripts,
		// percent signs never): refuse anything that is not a plain label
		// character or a letter, rather than trust each mapping.
		if r < 0x80 && !isLDH(byte(r)) && r != '.' {
			return "", fmt.Errorf("%q is not allowed in a host name", r)
		}
	}
	a, err := lookup.ToASCII(s)
	if err != nil {
		return "", fmt.Errorf("not a valid host name: %v", err)
	}
	// The canonical form must be its own canonical form: mappings that
	// produce something the profile would refuse on a second pass (an
	// invalid Punycode label, say) are not names.
	if again, err := lookup.ToASCII(a); err != nil || again != a {
		return "", errors.New("not a valid host name")
	}
	if len(a) > MaxNameLength {
		return "", fmt.Errorf("host name longer than %d characters", MaxNameLength)
	}
	labels := strings.Split(a, ".")
	for _, l := range labels {
		if l == "" {
			return "", errors.New("empty label in host name")
		}
	}
	if endsInNumber(labels[len(labels)-1]) {
		// Names such as 127.1, 0x7f.0.0.1 or 2130706433 are addresses to
		// some resolvers and URL parsers (inet_aton): never names here.
		return "", errors.New("the last label is a number: write an IP address in its usual form, or a name")
	}
	return a, nil
}

func isLDH(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-'
}

// endsInNumber follows the WHATWG URL standard's "ends in a number" test:
// a decimal label, or 0x followed by hex digits.
func endsInNumber(label string) bool {
	if label == "" {
		return false
	}
	digits := label
	hex := false
	if strings.HasPrefix(label, "0x") || strings.HasPrefix(label, "0X") {
		digits, hex = label[2:], true
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c >= '0' && c <= '9' || hex && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			continue
		}
		return false
	}
	return true
}
