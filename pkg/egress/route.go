package egress

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// isRoute: r asks for one of the proxy's own routes (keys.RoutePrefix),
// in origin form (sent to the proxy as a server: the base URLs sandboxes
// are given) or in absolute form naming the proxy itself (a client that
// sent it through HTTP_PROXY all the same). An absolute-form request for
// another authority is a plain proxied request, whatever its path.
func (p *Proxy) isRoute(r *http.Request) bool {
	if r.Method == http.MethodConnect {
		return false
	}
	if !strings.HasPrefix(r.URL.Path, keys.RoutePrefix) && !strings.HasPrefix(r.URL.EscapedPath(), keys.RoutePrefix) {
		return false
	}
	if r.URL.Host == "" {
		return r.URL.Scheme == ""
	}
	return r.URL.Scheme == "http" && p.isSelf(r)
}

// isSelf: the request's authority is the proxy's own address, as the
// connection came in (a Pod's address) or as Self lists it (the Service's).
func (p *Proxy) isSelf(r *http.Request) bool {
	authority := strings.ToLower(r.URL.Host)
	if slices.Contains(p.Self, authority) {
		return true
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && local.String() == authority
}

// routePath reads a route's path: the API host it names (canonical) and
// the path to send there. A path that cleaning or unescaping would change
// is refused, not normalised: what the key's path rule (Injection.Covers)
// judged must be exactly what the API receives.
func routePath(u *url.URL) (host, rest string, err error) {
	escaped := u.EscapedPath()
	switch {
	case u.Opaque != "" || u.RawPath != "" || strings.ContainsAny(escaped, "%\\"):
		return "", "", errors.New("a route's path may hold no escapes (%) or backslashes")
	case strings.Contains(u.Path, "\x00"):
		return "", "", errors.New("a route's path may hold no NUL")
	}
	if c := path.Clean(escaped); c != escaped && c+"/" != escaped {
		return "", "", errors.New(`a route's path may hold no ".", ".." or empty segments`)
	}
	host, rest, ok := keys.SplitRoute(escaped)
	if !ok {
		return "", "", errors.New("the route names no API host: " + keys.RoutePrefix + "HOST/PATH")
	}
	t, err := hosts.ParseAuthority(host+":443", 0)
	if err != nil || t.Name != host {
		return "", "", errors.New("the route's API host must be one host name, lower case (e.g. api.anthropic.com)")
	}
	return host, rest, nil
}
