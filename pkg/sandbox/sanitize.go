package sandbox

import "strings"

// sanitizeLine makes text a sandbox (or anyone who may write a Pod) chose
// fit for one line of an error message: control characters replaced (see
// sanitize), runs of white space made one space, and at most max runes
// kept. A member's stderr must neither drive the user's terminal, nor fill
// their screen, nor pass for a line of ours.
func sanitizeLine(s string, max int) string {
	s = strings.Join(strings.Fields(sanitize(s)), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}
