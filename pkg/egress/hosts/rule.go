package hosts

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// DefaultPort is the port of a rule that names none: HTTPS.
const DefaultPort = 443

// Rule is one grant: a host name, a wildcard for the subdomains of a name,
// or an address block, and one port.
type Rule struct {
	// Name is canonical (see canonicalName): lower-case ASCII, IDNA
	// A-labels, no trailing dot. "*.example.com" is a wildcard: every name
	// below example.com, at any depth, but not example.com itself.
	Name string
	// Prefix, when Name is empty: the addresses an IP-literal target may
	// have. A single address is a /32 or /128.
	Prefix netip.Prefix
	Port   uint16
}

// Wildcard reports whether the rule names the subdomains of a name.
func (r Rule) Wildcard() bool { return strings.HasPrefix(r.Name, "*.") }

// String is the rule's canonical form, which ParseRule reads back:
// "api.example.com:443", "*.example.com:443", "203.0.113.0/24:443",
// "[2001:db8::1]:443".
func (r Rule) String() string {
	port := strconv.Itoa(int(r.Port))
	if r.Name != "" {
		return r.Name + ":" + port
	}
	host := r.Prefix.String()
	if r.Prefix.IsSingleIP() {
		host = r.Prefix.Addr().String()
	}
	if r.Prefix.Addr().Is6() {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// MaxRuleLength bounds a rule as written by a user or stored on a Pod.
const MaxRuleLength = MaxNameLength + 16

// ParseRule reads HOST[:PORT] as given to --allow-host: a name
// (api.example.com, bücher.de, example.com.), a wildcard (*.example.com),
// an IPv4 address or CIDR (203.0.113.7, 203.0.113.0/24:8443), or an IPv6
// address or CIDR, in brackets when a port follows ([2001:db8::/32]:443).
// Without a port the rule is for 443.
func ParseRule(s string) (Rule, error) {
	r, err := parseRule(s)
	if err != nil {
		return Rule{}, fmt.Errorf("--allow-host %q: %v", untrusted.Truncate(s, MaxRuleLength), err)
	}
	return r, nil
}

func parseRule(s string) (Rule, error) {
	if len(s) > MaxRuleLength {
		return Rule{}, errors.New("too long")
	}
	host, port, err := splitHostPort(s, DefaultPort)
	if err != nil {
		return Rule{}, err
	}
	if strings.Contains(host, "/") {
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return Rule{}, fmt.Errorf("not a CIDR block: %v", stripQuoted(err))
		}
		if p.Addr().Zone() != "" {
			return Rule{}, errors.New("an IPv6 zone has no meaning to the proxy")
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			if !p.IsValid() {
				return Rule{}, errors.New("an IPv4-mapped block shorter than /96")
			}
		}
		if p != p.Masked() {
			return Rule{}, fmt.Errorf("host bits are set: did you mean %s?", p.Masked())
		}
		return checkBlock(Rule{Prefix: p, Port: port})
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return Rule{}, errors.New("an IPv6 zone has no meaning to the proxy")
		}
		a = a.Unmap()
		return checkBlock(Rule{Prefix: netip.PrefixFrom(a, a.BitLen()), Port: port})
	}
	wildcard := strings.HasPrefix(host, "*.")
	name, err := canonicalName(strings.TrimPrefix(host, "*."))
	if err != nil {
		if strings.Contains(host, "*") && !wildcard {
			return Rule{}, errors.New("a wildcard must be a whole first label: *.example.com")
		}
		return Rule{}, err
	}
	if wildcard {
		if !strings.Contains(name, ".") {
			// *.com would grant a whole top-level domain.
			return Rule{}, fmt.Errorf("*.%s covers a whole top-level domain; name the domain: *.example.%s", name, name)
		}
		name = "*." + name
	}
	return Rule{Name: name, Port: port}, nil
}

// checkBlock refuses blocks that lie wholly in addresses the proxy never
// dials: such a grant could never be used.
func checkBlock(r Rule) (Rule, error) {
	if c, why := ClassifyBlock(r.Prefix); c == Never {
		return Rule{}, fmt.Errorf("%s is %s: the egress proxy never connects there", r.Prefix, why)
	}
	return r, nil
}

// splitHostPort splits HOST[:PORT], [IPV6][:PORT], or a bare IPv6 address
// or block with no port.
func splitHostPort(s string, defaultPort uint16) (string, uint16, error) {
	if s == "" {
		return "", 0, errors.New("empty")
	}
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, errors.New("missing ']' after an IPv6 address")
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return host, defaultPort, portNeeded(defaultPort)
		}
		if !strings.HasPrefix(rest, ":") {
			return "", 0, errors.New("expected ':PORT' after ']'")
		}
		p, err := parsePort(rest[1:])
		return host, p, err
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, defaultPort, portNeeded(defaultPort)
	case 1:
		host, port, _ := strings.Cut(s, ":")
		p, err := parsePort(port)
		return host, p, err
	}
	// An IPv6 address without brackets cannot carry a port.
	return s, defaultPort, portNeeded(defaultPort)
}

func portNeeded(defaultPort uint16) error {
	if defaultPort == 0 {
		return errors.New("a port is required (HOST:PORT)")
	}
	return nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("port %q: expected a number from 1 to 65535", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("port %q: expected a number from 1 to 65535", s)
		}
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q: expected a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// stripQuoted drops the input netip echoes back in its errors (it is
// already in ours).
func stripQuoted(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}
