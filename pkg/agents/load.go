package agents

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The header a presets file may carry; both fields are optional.
const (
	APIVersion = "agentkernel/v1alpha1"
	Kind       = "AgentPresets"
)

// MaxNameLength leaves room for the suffix of a generated sandbox name
// ("claude-x7k2p").
const MaxNameLength = 40

// Error is one problem in a presets file, located to the line and field.
type Error struct {
	File  string
	Line  int    // 0: unknown
	Field string // e.g. "agents.claude.memory"; "" for the file as a whole
	Msg   string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Field + ": " + e.Msg
}

type position struct {
	file string
	line int
}

// maxErrors is how many problems one file reports before giving up.
const maxErrors = 20

// parser collects the errors of one file.
type parser struct {
	file string
	errs []error
}

func (p *parser) fail(n *yaml.Node, field, format string, args ...any) {
	if len(p.errs) < maxErrors {
		p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse reads one presets file. Every problem is reported as an *Error
// (joined), as many as maxErrors of them.
func Parse(file string, data []byte) ([]*Preset, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file: nothing to add
		}
		e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
		}
		return nil, e
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			line = 0
		}
		return nil, &Error{File: file, Line: line, Msg: "only one YAML document is allowed (remove the '---')"}
	}
	p := &parser{file: file}
	presets := p.document(&doc)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return presets, nil
}

// resolve follows aliases (*anchor) to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// mapping returns the key/value pairs of a mapping node, reporting keys
// that are not plain strings or appear twice.
func (p *parser) mapping(n *yaml.Node, field string) (keys []string, values []*yaml.Node, ok bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, field, "want a mapping (key: value lines), not %s", describe(n))
		return nil, nil, false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
			p.fail(k, field, "keys must be plain names, not %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.fail(k, join(field, k.Value), "set twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		keys = append(keys, k.Value)
		values = append(values, v)
	}
	return keys, values, true
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	}
	if isNull(n) {
		return "an empty value"
	}
	return fmt.Sprintf("%q", n.Value)
}

func (p *parser) document(doc *yaml.Node) []*Preset {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.fail(doc, "", "want a YAML mapping with apiVersion, kind and agents")
		return nil
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return nil
	}
	keys, values, ok := p.mapping(root, "")
	if !ok {
		return nil
	}
	var presets []*Preset
	for i, k := range keys {
		v := resolve(values[i])
		switch k {
		case "apiVersion":
			if s, ok := p.scalar(v, k); ok && s != APIVersion {
				p.fail(v, k, "%q is not supported: use %s", s, APIVersion)
			}
		case "kind":
			if s, ok := p.scalar(v, k); ok && s != Kind {
				p.fail(v, k, "%q is not supported: use %s", s, Kind)
			}
		case "agents":
			if isNull(v) {
				continue
			}
			names, defs, ok := p.mapping(v, k)
			if !ok {
				continue
			}
			for j, name := range names {
				if preset := p.preset(name, defs[j]); preset != nil {
					presets = append(presets, preset)
				}
			}
		default:
			p.fail(v, k, "unknown field; a presets file has apiVersion, kind and agents")
		}
	}
	return presets
}

// scalar returns a scalar's text; null is "" (it clears an embedded value).
func (p *parser) scalar(n *yaml.Node, field string) (string, bool) {
	n = resolve(n)
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.fail(n, field, "want a single value, not %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// list returns a list of scalars; a single value is a one-item list.
func (p *parser) list(n *yaml.Node, field string) ([]string, bool) {
	n = resolve(n)
	switch {
	case isNull(n):
		return nil, true
	case n.Kind == yaml.ScalarNode:
		return []string{n.Value}, true
	case n.Kind != yaml.SequenceNode:
		p.fail(n, field, "want a list, not %s", describe(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		s, good := p.scalar(item, fmt.Sprintf("%s[%d]", field, i))
		if good && isNull(resolve(item)) {
			p.fail(resolve(item), fmt.Sprintf("%s[%d]", field, i), "empty list item")
			good = false
		}
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}
