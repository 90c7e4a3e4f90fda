package agents

import (
	"net/http"
	"sort"

	"go.yaml.in/yaml/v3"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// inject reads a preset's inject: per credential variable, how the
// namespace's egress proxy adds that key to the agent's requests so the
// key never enters the sandbox:
//
//	inject:
//	  ANTHROPIC_API_KEY: {host: api.anthropic.com, header: x-api-key, paths: [/v1/], baseURLVariables: [ANTHROPIC_BASE_URL]}
//
// header is any header name (stored canonical); prefix goes before the key
// ("Bearer "). Each entry is checked as keys.Injection.Validate checks it.
func (p *parser) inject(n *yaml.Node, field string) []keys.Injection {
	if isNull(resolve(n)) {
		return nil
	}
	names, values, ok := p.mapping(n, field)
	if !ok {
		return nil
	}
	var out []keys.Injection
	for i, name := range names {
		f := join(field, name)
		in, ok := p.injection(name, values[i], f)
		if !ok {
			continue
		}
		if err := in.Validate(); err != nil {
			p.fail(resolve(values[i]), f, "%v", err)
			continue
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Variable < out[j].Variable })
	return out
}

func (p *parser) injection(variable string, n *yaml.Node, field string) (keys.Injection, bool) {
	in := keys.Injection{Variable: variable}
	fields, values, ok := p.mapping(n, field)
	if !ok {
		return in, false
	}
	for i, k := range fields {
		f := join(field, k)
		switch k {
		case "host":
			in.Host, ok = p.scalar(values[i], f)
		case "header":
			var h string
			h, ok = p.scalar(values[i], f)
			in.Header = http.CanonicalHeaderKey(h)
		case "prefix":
			in.Prefix, ok = p.scalar(values[i], f)
		case "paths":
			in.Paths, ok = p.list(values[i], f)
		case "baseURLVariables":
			in.BaseURLVariables, ok = p.list(values[i], f)
		default:
			p.fail(values[i], f, "unknown field; an inject entry has host, header, prefix, paths and baseURLVariables")
			ok = false
		}
		if !ok {
			return in, false
		}
	}
	return in, true
}

// Injection is how the preset's credential variable is injected by the
// egress proxy, if the preset says.
func (p *Preset) Injection(variable string) (keys.Injection, bool) {
	for _, in := range p.Inject {
		if in.Variable == variable {
			return in, true
		}
	}
	return keys.Injection{}, false
}

// checkInject: every injected variable is one of the preset's credentials.
func (p *Preset) checkInject() []string {
	var bad []string
	for _, in := range p.Inject {
		known := false
		for _, list := range [][]string{p.Credentials.Required, p.Credentials.AnyOf, p.Credentials.Optional} {
			for _, n := range list {
				known = known || n == in.Variable
			}
		}
		if !known {
			bad = append(bad, in.Variable+" is injected but not one of the preset's credentials")
		}
	}
	return bad
}
