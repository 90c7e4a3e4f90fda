package sandbox

import (
	"bytes"
	"strings"
	"unicode"
)

// boundedBuffer keeps the first 16 KiB of a sandbox's stderr for an error
// message, printable characters only: the sandbox must not be able to flood
// the user's memory or drive their terminal with escape sequences.
type boundedBuffer struct {
	buf bytes.Buffer
}

const maxStderr = 16 << 10

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := maxStderr - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string { return sanitize(b.buf.String()) }

// sanitize replaces control characters (other than newline and tab) in text
// that came from a sandbox, so it can be printed safely.
func sanitize(s string) string {
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
