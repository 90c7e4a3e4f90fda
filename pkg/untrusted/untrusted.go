// Package untrusted holds what every reader of text that came from a
// sandbox needs: one sanitiser (Printable), one bounded buffer (Buffer) and
// one Truncate. A sandbox is hostile: what it prints must neither flood the
// user's memory nor drive their terminal. It imports nothing of ours.
package untrusted

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Buffer keeps the first 16 KiB of a sandbox's stderr for an error
// message, printable characters only: the sandbox must not be able to flood
// the user's memory or drive their terminal with escape sequences.
type Buffer struct {
	buf bytes.Buffer
}

const maxStderr = 16 << 10

func (b *Buffer) Write(p []byte) (int, error) {
	if room := maxStderr - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *Buffer) String() string { return Printable(b.buf.String()) }

// Printable returns text that came from a sandbox with its control
// characters (other than newline and tab) and invalid UTF-8 replaced by
// '?', safe to show a person or hand to an agent.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, s)
}

// Truncate keeps at most the first n bytes of s, never half a UTF-8
// character, and marks a cut with "...".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
