// Package untrusted holds what every reader of text that came from a
// sandbox needs: one sanitiser (Printable), one bounded buffer (Buffer) and
// one Truncate. A sandbox is hostile: what it prints must neither flood the
// user's memory nor drive their terminal. It imports nothing of ours.
package untrusted

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Buffer keeps the first Max bytes (16 KiB when Max is 0) of what a
// sandbox writes, for an error message or a probe's answer, and shows them
// printable only: the sandbox must not be able to flood the user's memory
// or drive their terminal with escape sequences. It never fails a write, so
// the command feeding it runs to its end.
type Buffer struct {
	Max int
	buf bytes.Buffer
}

const maxStderr = 16 << 10

func (b *Buffer) Write(p []byte) (int, error) {
	limit := b.Max
	if limit <= 0 {
		limit = maxStderr
	}
	if room := limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
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

// maxShownName bounds how much of a name chosen by a sandbox one message
// quotes: enough to recognise it, never a megabyte of it.
const maxShownName = 256

// Shown is a name chosen by a sandbox as a message quotes it (with %q):
// printable, and cut, saying how much was cut, when long.
func Shown(name string) string {
	if len(name) > maxShownName {
		cut := maxShownName
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = fmt.Sprintf("%s…[%d more bytes]", name[:cut], len(name)-cut)
	}
	return Printable(name)
}

// maxMessage bounds an error message that may quote a sandbox's names.
const maxMessage = 2048

// untrustedError is an error whose text may quote names a sandbox chose (a
// file system error names the path it failed on). Its message is what
// Printable makes of it, on one line and bounded (the start and the end are
// kept: what failed, and why); errors.Is and errors.As still see the cause.
type untrustedError struct{ err error }

func (e *untrustedError) Error() string {
	msg := strings.ReplaceAll(Printable(e.err.Error()), "\n", " ")
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

// Error returns err with a message safe to print to a terminal or hand to
// an agent (see untrustedError), for errors that may quote what a sandbox
// said or named; errors.Is and errors.As still see through it.
func Error(err error) error {
	if err == nil {
		return nil
	}
	return &untrustedError{err}
}
