// Package field is how the domain names what is wrong: by the field of a
// sandbox, a pool or a copy, never by the flag or argument that set it.
// The edges (pkg/cmd, pkg/mcp) turn fields into their own words.
//
// It is our own rather than k8s.io/apimachinery's util/validation/field:
// that one renders a JSON path ("spec.image: Required value") and sorts
// its detail into Required/Invalid/…, while our messages are sentences
// that name other fields ("allowEgress needs network egress") and that
// the CLI must keep word for word with only the names swapped for flags.
// It is a package of its own, importing nothing, so that every domain
// package (the fence, which pkg/sandbox imports, too) can use it.
package field

import (
	"fmt"
	"regexp"
)

// Error says what is wrong with one field: it is invalid (Detail), or it
// goes beyond a ceiling (Asked, Ceiling).
type Error struct {
	// Field is the Spec field, named as the Spec's JSON names it (image,
	// uid, ttl, idleTimeout, cpu, allowEgress, dns, allowHosts, …), or a
	// pool's "size", a copy's "maxBytes"/"maxFiles", a wait's "timeout".
	Field string
	// Detail, for an invalid field, is the sentence in plain words. It
	// names fields, its own and others, in backquotes (`image`), so each
	// edge can put its own name for them.
	Detail string
	// Asked is what goes beyond; Ceiling what the ceiling allows.
	Asked, Ceiling string
	// Step, if its Hint is set, names a next step that an edge words as
	// its own command (the CLI appends "(a sandbox without a pool:
	// kubectl agentkernel create NAME)" for HintNoPool). The edge's words
	// go where Detail says `step`, or else after the message.
	Step Step
}

// Hint names a next step an edge may suggest, in its own words.
type Hint string

// HintNoPool: what was asked of a pool is better done without one.
const HintNoPool Hint = "noPool"

// Invalid says that field is wrong; detail, formatted, is the sentence,
// naming fields in backquotes.
func Invalid(field, detail string, args ...any) Error {
	return Error{Field: field, Detail: fmt.Sprintf(detail, args...)}
}

// named is a field named in a Detail.
var named = regexp.MustCompile("`([A-Za-z]+)`")

// Words is the error in the words of an edge: name gives its name for a
// field.
func (e Error) Words(name func(field string) string) string {
	if e.Detail == "" {
		return fmt.Sprintf("%s: %s is beyond %s", name(e.Field), e.Asked, e.Ceiling)
	}
	return Name(e.Detail, func(f string) string {
		if f == stepMark {
			return "" // the edge's words for Step, which Say puts here
		}
		return name(f)
	})
}

// stepMark, in backquotes, is where in a Detail the next step goes.
const stepMark = "step"

// Error names fields as the domain does.
func (e Error) Error() string {
	return e.Words(func(f string) string { return f })
}

// Named lists the fields a message names, its own first.
func (e Error) Named() []string {
	out := []string{e.Field}
	for _, m := range named.FindAllStringSubmatch(e.Detail, -1) {
		if m[1] != stepMark {
			out = append(out, m[1])
		}
	}
	return out
}
