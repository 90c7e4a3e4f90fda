package agents

import (
	"errors"
	"maps"
	"slices"
)

// Merge lays the presets of a user's file over the embedded ones: a preset
// of a new name is added; one of an existing name replaces the fields it
// sets, except env, which is merged variable by variable (a variable set
// to null is removed). The result is checked as a whole: a preset must end
// up with an image, and a variable may not be both plain and a credential.
func Merge(base, over []*Preset) (*Set, error) {
	set := &Set{byName: map[string]*Preset{}}
	for _, p := range base {
		set.byName[p.Name] = p
	}
	for _, o := range over {
		b, exists := set.byName[o.Name]
		if !exists {
			set.byName[o.Name] = o
			continue
		}
		set.byName[o.Name] = overlay(b, o)
	}
	var errs []error
	for _, name := range set.Names() {
		errs = append(errs, set.byName[name].check()...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// overlay returns a copy of b with the fields o sets.
func overlay(b, o *Preset) *Preset {
	m := *b
	m.Source = b.Source + ", overridden by " + o.Source
	m.where = maps.Clone(b.where)
	for field, pos := range o.where {
		m.where[field] = pos
		switch field {
		case "description":
			m.Description = o.Description
		case "image":
			m.Image = o.Image
		case "install":
			m.Install = o.Install
		case "command":
			m.Command = slices.Clone(o.Command)
		case "credentials":
			m.Credentials = o.Credentials
		case "inject":
			m.Inject = slices.Clone(o.Inject)
		case "env":
			m.Env = maps.Clone(b.Env)
			if m.Env == nil {
				m.Env = map[string]string{}
			}
			maps.Copy(m.Env, o.Env)
			for _, k := range o.unsetEnv {
				delete(m.Env, k)
			}
		case "profile":
			m.Profile = o.Profile
		case "network":
			m.Network = o.Network
		case "readOnly":
			m.ReadOnly = o.ReadOnly
		case "cpu":
			m.CPU = o.CPU
		case "memory":
			m.Memory = o.Memory
		case "ephemeralStorage":
			m.EphemeralStorage = o.EphemeralStorage
		case "hosts":
			m.Hosts = slices.Clone(o.Hosts)
		case "persist":
			m.Persist = o.Persist
		case "storageClass":
			m.StorageClass = o.StorageClass
		case "retain":
			m.Retain = o.Retain
		}
	}
	return &m
}

// check finds what only the merged preset can show, located at the field
// that was set last.
func (p *Preset) check() []error {
	fail := func(field, msg string) error {
		pos := p.where[field]
		if pos.file == "" {
			pos = p.where[""]
		}
		name := "agents." + p.Name
		if field != "" {
			name += "." + field
		}
		return &Error{File: pos.file, Line: pos.line, Field: name, Msg: msg}
	}
	var errs []error
	if p.Image == "" {
		errs = append(errs, fail("image", "no image: a preset needs one (e.g. image: docker.io/library/node:22)"))
	}
	for _, list := range [][]string{p.Credentials.Required, p.Credentials.AnyOf, p.Credentials.Optional} {
		for _, n := range list {
			if _, plain := p.Env[n]; plain {
				errs = append(errs, fail("env", n+" is both a plain variable here and a credential: a credential's value must come from your environment, through the Secret"))
			}
		}
	}
	for _, msg := range p.checkInject() {
		errs = append(errs, fail("inject", msg))
	}
	if p.Persist == "" {
		// As --storage-class and --retain need --persist.
		for _, f := range []struct{ name, value, why string }{
			{"storageClass", p.StorageClass, "a disposable sandbox has no workspace to put in a class"},
			{"retain", p.Retain, "a disposable sandbox keeps nothing to retain"},
		} {
			if f.value != "" {
				errs = append(errs, fail(f.name, f.name+" needs persist (e.g. persist: 10Gi): "+f.why))
			}
		}
	}
	return errs
}
