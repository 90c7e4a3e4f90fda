package mcp

import (
	"fmt"
	"unicode/utf8"

	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// capture keeps the first limit bytes a sandbox writes and counts the rest.
// It never fails a write: the command runs to its end (or its timeout)
// whatever it prints, and the agent learns how much it did not see.
type capture struct {
	buf   []byte
	limit int
	total int64
}

func (c *capture) Write(p []byte) (int, error) {
	if room := c.limit - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	c.total += int64(len(p))
	return len(p), nil
}

func (c *capture) truncated() bool { return c.total > int64(len(c.buf)) }

// text is what the agent sees of it: printable, whole characters only,
// and a marker it cannot miss when something was cut off.
func (c *capture) text() string {
	if !c.truncated() {
		return cleanText(c.buf)
	}
	return cleanText(trimPartialRune(c.buf)) + truncationMarker(int64(len(c.buf)), c.total)
}

// truncationMarker ends text that was cut at a byte limit.
func truncationMarker(shown, total int64) string {
	if total < 0 {
		return fmt.Sprintf("\n[agentkernel: truncated after %d bytes; there is more]", shown)
	}
	return fmt.Sprintf("\n[agentkernel: truncated: the first %d of %d bytes are shown]", shown, total)
}

// cleanText makes bytes from a sandbox safe to hand to an agent: control
// characters (but newline and tab) and invalid UTF-8 become '?'. Carriage
// returns before a newline are dropped rather than marked, so CRLF text
// reads as text.
func cleanText(b []byte) string {
	return untrusted.Printable(string(dropCR(b)))
}

// isCleanText reports whether cleanText would return b unchanged (but for
// CRLF line ends): valid UTF-8 without control characters.
func isCleanText(b []byte) bool {
	s := string(dropCR(b))
	return utf8.ValidString(s) && untrusted.Printable(s) == s
}

func dropCR(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// trimPartialRune drops an incomplete UTF-8 sequence that a byte limit cut
// off at the end of b, so the cut does not show as a bogus '?'.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		start := len(b) - i
		if !utf8.RuneStart(b[start]) {
			continue
		}
		if r, size := utf8.DecodeRune(b[start:]); r == utf8.RuneError && size <= 1 && !utf8.FullRune(b[start:]) {
			return b[:start]
		}
		return b
	}
	return b
}
