package agents

import (
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// presetFields decode one field each; the names are the YAML keys.
var presetFields = map[string]func(p *parser, n *yaml.Node, field string, into *Preset){
	"description": func(p *parser, n *yaml.Node, f string, into *Preset) { into.Description, _ = p.scalar(n, f) },
	"image": func(p *parser, n *yaml.Node, f string, into *Preset) {
		if s, ok := p.scalar(n, f); ok {
			if strings.ContainsAny(s, " \t\n\r") {
				p.fail(n, f, "want an image reference such as docker.io/library/node:22, not %q", s)
			}
			into.Image = s
		}
	},
	"install": func(p *parser, n *yaml.Node, f string, into *Preset) { into.Install, _ = p.scalar(n, f) },
	"command": func(p *parser, n *yaml.Node, f string, into *Preset) {
		if l, ok := p.list(n, f); ok {
			if len(l) > 0 && strings.TrimSpace(l[0]) == "" {
				p.fail(n, f, "the first word of a command must be a program, not empty")
			}
			into.Command = l
		}
	},
	"credentials": func(p *parser, n *yaml.Node, f string, into *Preset) { into.Credentials = p.credentials(n, f) },
	"inject":      func(p *parser, n *yaml.Node, f string, into *Preset) { into.Inject = p.inject(n, f) },
	"env": func(p *parser, n *yaml.Node, f string, into *Preset) {
		into.Env = map[string]string{}
		if isNull(resolve(n)) {
			return
		}
		keys, values, ok := p.mapping(n, f)
		if !ok {
			return
		}
		for i, k := range keys {
			v := resolve(values[i])
			if err := sandbox.ValidateEnvName(k); err != nil {
				p.fail(v, join(f, k), "%v", err)
				continue
			}
			if isNull(v) {
				into.unsetEnv = append(into.unsetEnv, k) // removes an embedded preset's variable
				continue
			}
			if s, ok := p.scalar(v, join(f, k)); ok {
				into.Env[k] = s
			}
		}
	},
	"profile": func(p *parser, n *yaml.Node, f string, into *Preset) {
		if s, ok := p.scalar(n, f); ok && s != "" {
			if _, err := sandbox.ParseProfile(s); err != nil {
				p.fail(n, f, "%v", err)
			}
			into.Profile = s
		}
	},
	"network": func(p *parser, n *yaml.Node, f string, into *Preset) {
		if s, ok := p.scalar(n, f); ok && s != "" {
			if _, err := sandbox.ParseNetwork(s); err != nil {
				p.fail(n, f, "%v", err)
			}
			into.Network = s
		}
	},
	"readOnly": func(p *parser, n *yaml.Node, f string, into *Preset) {
		n = resolve(n)
		if isNull(n) {
			into.ReadOnly = nil
			return
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			p.fail(n, f, "want true or false, not %s", describe(n))
			return
		}
		b := n.Value == "true" || n.Value == "True" || n.Value == "TRUE"
		into.ReadOnly = &b
	},
	"cpu":              func(p *parser, n *yaml.Node, f string, into *Preset) { into.CPU = p.quantity(n, f) },
	"memory":           func(p *parser, n *yaml.Node, f string, into *Preset) { into.Memory = p.quantity(n, f) },
	"ephemeralStorage": func(p *parser, n *yaml.Node, f string, into *Preset) { into.EphemeralStorage = p.quantity(n, f) },
	"persist":          func(p *parser, n *yaml.Node, f string, into *Preset) { into.Persist = p.persist(n, f) },
	"storageClass":     func(p *parser, n *yaml.Node, f string, into *Preset) { into.StorageClass = p.storageClass(n, f) },
	"retain":           func(p *parser, n *yaml.Node, f string, into *Preset) { into.Retain = p.retain(n, f) },
	"hosts": func(p *parser, n *yaml.Node, f string, into *Preset) {
		if l, ok := p.list(n, f); ok {
			for _, h := range l {
				if _, err := hosts.ParseRule(h); err != nil {
					p.fail(n, f, "%v", err)
				}
			}
			into.Hosts = l
		}
	},
}

func fieldNames() string {
	names := make([]string, 0, len(presetFields))
	for n := range presetFields {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func (p *parser) preset(name string, n *yaml.Node) *Preset {
	field := "agents." + name
	n = resolve(n)
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 || len(name) > MaxNameLength {
		p.fail(n, field, "invalid preset name: use at most %d lower-case letters, digits and '-', starting and ending with a letter or digit", MaxNameLength)
		return nil
	}
	preset := &Preset{Name: name, Source: p.file, where: map[string]position{"": {p.file, n.Line}}}
	if isNull(n) {
		p.fail(n, field, "empty preset: give at least an image")
		return nil
	}
	keys, values, ok := p.mapping(n, field)
	if !ok {
		return nil
	}
	for i, k := range keys {
		decode, known := presetFields[k]
		if !known {
			p.fail(values[i], join(field, k), "unknown field; a preset has %s", fieldNames())
			continue
		}
		decode(p, values[i], join(field, k), preset)
		preset.where[k] = position{p.file, resolve(values[i]).Line}
	}
	return preset
}

func (p *parser) quantity(n *yaml.Node, field string) string {
	s, ok := p.scalar(n, field)
	if !ok || s == "" {
		return ""
	}
	q, err := resource.ParseQuantity(s)
	switch {
	case err != nil:
		p.fail(n, field, "%q is not a valid quantity (examples: 500m, 2, 512Mi, 4Gi)", s)
	case q.Sign() <= 0:
		p.fail(n, field, "%q must be greater than zero", s)
	}
	return s
}

// persist is a workspace size, as --persist takes it; true is --persist
// alone (the default size), false or empty a disposable sandbox (which
// undoes an embedded preset's persist).
func (p *parser) persist(n *yaml.Node, field string) string {
	if r := resolve(n); r.Kind == yaml.ScalarNode && r.ShortTag() == "!!bool" {
		if strings.EqualFold(r.Value, "true") {
			return sandbox.DefaultWorkspaceSize.String()
		}
		return ""
	}
	s, ok := p.scalar(n, field)
	if !ok || s == "" {
		return ""
	}
	if _, err := sandbox.ParseQuantity("persist", s); err != nil {
		p.fail(n, field, "%q is not a workspace size (examples: 10Gi, 500Mi; true for the default, %s)", s, sandbox.DefaultWorkspaceSize.String())
	}
	return s
}

// storageClass is a StorageClass name, as --storage-class takes it.
func (p *parser) storageClass(n *yaml.Node, field string) string {
	s, ok := p.scalar(n, field)
	if !ok || s == "" {
		return ""
	}
	if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
		p.fail(n, field, "%q is not a StorageClass name (a DNS subdomain: lower-case letters, digits, '-' and '.')", s)
	}
	return s
}

// retain is how long a suspended workspace is kept, as --retain takes it:
// 0, or at least a minute.
func (p *parser) retain(n *yaml.Node, field string) string {
	s, ok := p.scalar(n, field)
	if !ok || s == "" {
		return ""
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.fail(n, field, "%q is not a duration (examples: 168h, 30m; 0 keeps a suspended workspace until it is deleted)", s)
	case d < 0 || (d > 0 && d < time.Minute):
		p.fail(n, field, "%q must be at least 1m, or 0 to keep a suspended workspace until it is deleted", s)
	}
	return s
}

func (p *parser) credentials(n *yaml.Node, field string) Credentials {
	var c Credentials
	if isNull(resolve(n)) {
		return c
	}
	keys, values, ok := p.mapping(n, field)
	if !ok {
		return c
	}
	seen := map[string]string{}
	for i, k := range keys {
		f := join(field, k)
		var into *[]string
		switch k {
		case "required":
			into = &c.Required
		case "anyOf":
			into = &c.AnyOf
		case "optional":
			into = &c.Optional
		default:
			p.fail(values[i], f, "unknown field; credentials have required, anyOf and optional")
			continue
		}
		names, ok := p.list(values[i], f)
		if !ok {
			continue
		}
		for _, name := range names {
			if err := sandbox.ValidateEnvName(name); err != nil {
				p.fail(resolve(values[i]), f, "%v", err)
				continue
			}
			if other, dup := seen[name]; dup {
				p.fail(resolve(values[i]), f, "%s is already named in %s", name, other)
				continue
			}
			seen[name] = f
			*into = append(*into, name)
		}
	}
	return c
}
