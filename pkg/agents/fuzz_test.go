package agents

import (
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse feeds a user's presets file (untrusted input: it may be
// anything) to the loader. It must never panic, and what it accepts must
// mean the same once written out and read again.
func FuzzParse(f *testing.F) {
	f.Add(embedded)
	f.Add([]byte("agents:\n  a: {image: x, env: {A: null}, readOnly: null, credentials: {anyOf: [K]}}\n"))
	f.Add([]byte("agents:\n  a: &x {image: y}\n  b: *x\n"))
	f.Add([]byte("agents:\n  a:\n    image: x\n    image: y\n"))
	f.Add([]byte("agents:\n  a: {image: x, credentials: {anyOf: [K]}, inject: {K: {host: api.example.com, header: authorization, prefix: 'Bearer ', paths: [/v1/], baseURLVariables: [B]}}}\n"))
	f.Add([]byte("agents:\n  a: {image: x, inject: {K: {host: '*.example.com', header: 'a b'}}}\n"))
	f.Add([]byte("a: [\n"))
	f.Add([]byte("agents: {}\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		presets, err := Parse("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(interface{ Unwrap() []error }); !ok {
				if _, ok := err.(*Error); !ok {
					t.Fatalf("error of type %T: %v", err, err)
				}
			}
			return
		}
		// Merging must not fail for anything but the checks it documents.
		_, _ = Merge(nil, presets)
		again, err := Parse("again.yaml", render(t, presets))
		if err != nil {
			t.Fatalf("written out, the presets do not parse: %v", err)
		}
		if len(again) != len(presets) {
			t.Fatalf("%d presets became %d", len(presets), len(again))
		}
		for i := range presets {
			if a, b := comparable(presets[i]), comparable(again[i]); !reflect.DeepEqual(a, b) {
				t.Fatalf("preset changed on the way round:\n%+v\n%+v", a, b)
			}
		}
	})
}

// comparable is a preset without its provenance.
func comparable(p *Preset) Preset {
	c := *p
	c.Source, c.where, c.unsetEnv = "", nil, nil
	if len(c.Env) == 0 {
		c.Env = nil
	}
	if len(c.Command) == 0 {
		c.Command = nil
	}
	if len(c.Hosts) == 0 {
		c.Hosts = nil
	}
	if len(c.Inject) == 0 {
		c.Inject = nil
	}
	for i := range c.Inject {
		if len(c.Inject[i].Paths) == 0 {
			c.Inject[i].Paths = nil
		}
		if len(c.Inject[i].BaseURLVariables) == 0 {
			c.Inject[i].BaseURLVariables = nil
		}
	}
	return c
}

// render writes presets in the file format.
func render(t *testing.T, presets []*Preset) []byte {
	agents := &yaml.Node{Kind: yaml.MappingNode}
	str := func(s string) *yaml.Node { n := &yaml.Node{}; n.SetString(s); return n }
	for _, p := range presets {
		body := map[string]any{}
		for field := range p.where {
			switch field {
			case "description":
				body[field] = p.Description
			case "image":
				body[field] = p.Image
			case "install":
				body[field] = p.Install
			case "command":
				body[field] = p.Command
			case "credentials":
				body[field] = map[string][]string{"required": p.Credentials.Required, "anyOf": p.Credentials.AnyOf, "optional": p.Credentials.Optional}
			case "inject":
				inject := map[string]any{}
				for _, in := range p.Inject {
					inject[in.Variable] = map[string]any{"host": in.Host, "header": in.Header, "prefix": in.Prefix, "paths": in.Paths, "baseURLVariables": in.BaseURLVariables}
				}
				body[field] = inject
			case "env":
				body[field] = p.Env
			case "profile":
				body[field] = p.Profile
			case "network":
				body[field] = p.Network
			case "readOnly":
				body[field] = p.ReadOnly
			case "cpu":
				body[field] = p.CPU
			case "memory":
				body[field] = p.Memory
			case "ephemeralStorage":
				body[field] = p.EphemeralStorage
			case "hosts":
				body[field] = p.Hosts
			}
		}
		var n yaml.Node
		if err := n.Encode(body); err != nil {
			t.Fatal(err)
		}
		agents.Content = append(agents.Content, str(p.Name), &n)
	}
	out, err := yaml.Marshal(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("agents"), agents}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
