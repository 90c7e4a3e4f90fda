package cli

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// InjectFlags choose which model keys the namespace's egress proxy adds to
// the sandbox's requests, so that the sandbox never holds them: a preset's
// (agents.yaml inject), on unless --inject-keys=false, and the user's own
// --inject. Both need the sandbox fenced by host name (--allow-host): the
// proxy is its only way out; --inject fences it by itself.
type InjectFlags struct {
	InjectKeys bool
	Inject     []string

	injections []keys.Injection
	// Notices are what the user should hear (a credential left out).
	Notices []string
}

// InjectHeaderForms are the HEADER forms of --inject.
const InjectHeaderForms = "authorization-bearer (the default: Authorization: Bearer KEY), authorization (Authorization: KEY), or any other header name, which carries the key as it is (e.g. x-api-key)"

func (f *InjectFlags) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.InjectKeys, "inject-keys", true, "With --allow-host, let the namespace's egress proxy add the --agent preset's model keys to the agent's requests, so the sandbox never holds them (false: they go into the sandbox's Secret)")
	fl.StringArrayVar(&f.Inject, "inject", f.Inject, "NAME=HOST[:HEADER]: the egress proxy adds the key in your variable NAME to the sandbox's requests to https://HOST, in HEADER: "+InjectHeaderForms+
		"; the sandbox sees a placeholder in NAME and the proxy's route to HOST in NAME's base-URL variable (OPENAI_API_KEY: OPENAI_BASE_URL). HOST joins --allow-host (repeatable)")
}

// ParseInject reads one --inject value.
func ParseInject(s string) (keys.Injection, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return keys.Injection{}, fmt.Errorf("--inject %q: want NAME=HOST[:HEADER], e.g. OPENAI_API_KEY=api.openai.com", s)
	}
	host, header, _ := strings.Cut(rest, ":")
	if header != "" && strings.Trim(header, "0123456789") == "" {
		return keys.Injection{}, fmt.Errorf("--inject %q: %s is a port, not a header: the proxy reaches HOST on port 443 over TLS, always; HEADER is %s", s, header, InjectHeaderForms)
	}
	in := keys.Injection{Variable: name, Host: strings.ToLower(host), BaseURLVariables: []string{BaseURLVariable(name)}}
	switch strings.ToLower(header) {
	case "", "authorization-bearer":
		in.Header, in.Prefix = "Authorization", "Bearer "
	default:
		in.Header = http.CanonicalHeaderKey(header)
	}
	if err := in.Validate(); err != nil {
		return keys.Injection{}, fmt.Errorf("--inject %q: %v; HEADER is %s", s, err, InjectHeaderForms)
	}
	return in, nil
}

// BaseURLVariable is the base-URL variable of a key's variable, by the
// convention most SDKs follow: OPENAI_API_KEY → OPENAI_BASE_URL, MY_TOKEN
// → MY_BASE_URL.
func BaseURLVariable(name string) string {
	for _, suffix := range []string{"_API_KEY", "_KEY", "_TOKEN"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && base != "" {
			return base + "_BASE_URL"
		}
	}
	return name + "_BASE_URL"
}

// complete parses --inject; their hosts join --allow-host.
func (f *InjectFlags) complete(allowHosts *[]string) error {
	if len(f.Inject) > 0 && !f.InjectKeys {
		return fmt.Errorf("--inject needs the egress proxy to add keys: drop --inject-keys=false")
	}
	for _, s := range f.Inject {
		in, err := ParseInject(s)
		if err != nil {
			return err
		}
		if err := f.add(in); err != nil {
			return err
		}
		*allowHosts = append(*allowHosts, in.Host)
	}
	return nil
}

func (f *InjectFlags) add(in keys.Injection) error {
	for _, have := range f.injections {
		if have.Variable == in.Variable {
			return fmt.Errorf("--inject %s is given twice", in.Variable)
		}
		if have.Host == in.Host {
			return fmt.Errorf("--inject %s and %s both name %s: the proxy adds one key per host", have.Variable, in.Variable, in.Host)
		}
	}
	f.injections = append(f.injections, in)
	return nil
}

// fromPreset takes the preset's credentials the proxy can inject out of
// names (the credentials to pass): what is left goes into the Secret.
// Only with the proxy route (fenced: --allow-host), and one key per host:
// the first set, in the preset's order (claude: ANTHROPIC_API_KEY before
// CLAUDE_CODE_OAUTH_TOKEN); a second for the same host is not passed at
// all, and Notices says so.
func (f *InjectFlags) fromPreset(p *agents.Preset, names []string, fenced bool) ([]string, error) {
	if !f.InjectKeys || !fenced || len(p.Inject) == 0 {
		return names, nil
	}
	var secret []string
	for _, n := range names {
		in, ok := p.Injection(n)
		if !ok {
			secret = append(secret, n)
			continue
		}
		if i := slices.IndexFunc(f.injections, func(h keys.Injection) bool { return h.Host == in.Host }); i >= 0 {
			f.Notices = append(f.Notices, fmt.Sprintf("%s is not passed: %s is injected for %s already, and the proxy adds one key per host", n, f.injections[i].Variable, in.Host))
			continue
		}
		if err := f.add(in); err != nil {
			return nil, err
		}
	}
	return secret, nil
}

// Injections are the keys the proxy adds, once Complete ran.
func (f *InjectFlags) Injections() []keys.Injection { return f.injections }
