package mcp

import (
	"encoding/base64"
	"testing"
	"unicode/utf8"

	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// Whatever a process writes, process_output's text is printable UTF-8,
// covers no more than it was given, and makes progress: an agent reading
// on from the offsets it returns never reads the same bytes for ever.
func FuzzStreamText(f *testing.F) {
	for _, s := range []string{"", "plain\n", "h\xc3", "\xe2\x82", "\xe2", "a\r", "\r", "a\r\nb", "\x1b[2J\xff", "é"} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, b []byte, goesOn bool) {
		text, n, altered := streamText(b, encodingText, goesOn)
		if n > len(b) || (len(b) > 0 && n == 0) {
			t.Fatalf("covers %d of %d bytes", n, len(b))
		}
		if !goesOn && n != len(b) {
			t.Fatalf("output that has ended is cut: %d of %d bytes", n, len(b))
		}
		if !utf8.ValidString(text) || untrusted.Printable(text) != text {
			t.Fatalf("text %q is not printable UTF-8", text)
		}
		if !altered && text != string(dropCR(b[:n])) {
			t.Fatalf("text %q of %q is not marked altered", text, b[:n])
		}
		raw, n64, _ := streamText(b, encodingBase64, goesOn)
		if got, err := base64.StdEncoding.DecodeString(raw); err != nil || string(got) != string(b) || n64 != len(b) {
			t.Fatalf("base64 %q of %q: %v", raw, b, err)
		}
	})
}
