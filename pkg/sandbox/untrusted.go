package sandbox

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
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

// maxShownName bounds how much of a name chosen by a sandbox one message
// quotes: enough to recognise it, never a megabyte of it.
const maxShownName = 256

// shown is a name chosen by a sandbox as a message quotes it (with %q):
// printable, and cut, saying how much was cut, when long.
func shown(name string) string {
	if len(name) > maxShownName {
		cut := maxShownName
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = fmt.Sprintf("%s…[%d more bytes]", name[:cut], len(name)-cut)
	}
	return sanitize(name)
}

// maxMessage bounds an error message that may quote a sandbox's names.
const maxMessage = 2048

// untrustedError is an error whose text may quote names a sandbox chose (a
// file system error names the path it failed on). Its message is what
// sanitize makes of it, on one line and bounded (the start and the end are
// kept: what failed, and why); errors.Is and errors.As still see the cause.
type untrustedError struct{ err error }

func (e *untrustedError) Error() string {
	msg := strings.ReplaceAll(sanitize(e.err.Error()), "\n", " ")
	if len(msg) <= maxMessage {
		return msg
	}
	head, tail := maxMessage*2/3, maxMessage/4
	for head > 0 && !utf8.RuneStart(msg[head]) {
		head--
	}
	end := len(msg) - tail
	for end < len(msg) && !utf8.RuneStart(msg[end]) {
		end++
	}
	return fmt.Sprintf("%s…[%d bytes cut]…%s", msg[:head], end-head, msg[end:])
}

func (e *untrustedError) Unwrap() error { return e.err }

func untrusted(err error) error {
	if err == nil {
		return nil
	}
	return &untrustedError{err}
}

// PrintableError returns err with a message safe to print to a terminal or
// hand to an agent (see untrustedError), for callers printing errors that
// may quote what a sandbox said or named; errors.Is and errors.As still
// see through it.
func PrintableError(err error) error { return untrusted(err) }
