package untrusted

import (
	"strings"
	"unicode"
)

// Line makes text a sandbox (or anyone who may write a Pod) chose
// fit for one line of an error message: control and format characters
// replaced (see Printable), runs of white space made one space, and at most max runes
// kept. A member's stderr must neither drive the user's terminal, nor fill
// their screen, nor pass for a line of ours.
func Line(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) { // bidi overrides, zero-width joiners: they reorder or hide text
			return '?'
		}
		return r
	}, Printable(s))
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}
