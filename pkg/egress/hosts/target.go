package hosts

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Target is what a sandbox asks the proxy to connect to: a canonical name
// or an address, and a port. It comes from the sandbox, so it is parsed
// strictly and never trusted beyond what a Rule grants.
type Target struct {
	Name string // canonical, as Rule.Name; empty when Addr is set
	Addr netip.Addr
	Port uint16
}

// String is host:port, with IPv6 in brackets.
func (t Target) String() string {
	host := t.Name
	if host == "" {
		host = t.Addr.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(int(t.Port)))
}

// Host is the name or address, without the port.
func (t Target) Host() string {
	if t.Name != "" {
		return t.Name
	}
	return t.Addr.String()
}

// MaxAuthorityLength bounds what the proxy reads as an authority.
const MaxAuthorityLength = MaxNameLength + 8

// ParseAuthority reads the authority of a CONNECT request or of an
// absolute URL: host:port, [v6]:port, or (when defaultPort is not 0) a host
// alone. No userinfo, zones, wildcards or other decoration: what a
// well-behaved client sends, nothing else.
func ParseAuthority(s string, defaultPort uint16) (Target, error) {
	if len(s) > MaxAuthorityLength {
		return Target{}, errors.New("authority too long")
	}
	if strings.ContainsAny(s, "@*/\\%") {
		return Target{}, errors.New("authority may hold only a host and a port")
	}
	host, port, err := splitHostPort(s, defaultPort)
	if err != nil {
		return Target{}, err
	}
	if bracketed := strings.HasPrefix(s, "["); bracketed || strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return Target{}, errors.New("not an IPv6 address in brackets")
		}
		if !bracketed {
			return Target{}, errors.New("an IPv6 address must be in brackets: [2001:db8::1]:443")
		}
		return Target{Addr: a.Unmap(), Port: port}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return Target{Addr: a, Port: port}, nil
	}
	name, err := canonicalName(host)
	if err != nil {
		return Target{}, err
	}
	return Target{Name: name, Port: port}, nil
}

// Match returns the first rule that grants t. A name matches a rule of the
// same name, or a wildcard rule of a domain it lies under; an address
// matches only a block that contains it (a rule by name never grants an IP
// literal: the name's own addresses are what the proxy resolves). Ports
// must be equal.
func Match(rules []Rule, t Target) (Rule, bool) {
	for _, r := range rules {
		if r.Port != t.Port {
			continue
		}
		switch {
		case t.Name == "" && r.Name == "":
			if r.Prefix.Contains(t.Addr.Unmap()) {
				return r, true
			}
		case t.Name != "" && r.Name != "":
			if r.Wildcard() {
				if strings.HasSuffix(t.Name, r.Name[1:]) {
					return r, true
				}
			} else if r.Name == t.Name {
				return r, true
			}
		}
	}
	return Rule{}, false
}
