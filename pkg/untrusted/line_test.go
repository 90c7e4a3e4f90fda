package untrusted

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// A member's stderr, whatever it holds, becomes one printable line of
// bounded length whose words are the input's own.
func FuzzSanitizeLine(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b]0;title\x07\x1b[2J", "a\nb\r\nc\td", "\xff\xfe", strings.Repeat("é", 300), "agentkernel: ready\u2028next\u0085line", "safe\u202etxt.exe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		const max = 200
		out := Line(in, max)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8: %q", out)
		}
		body, cut := strings.CutSuffix(out, "…")
		if n := utf8.RuneCountInString(body); n > max || (cut && n != max) {
			t.Fatalf("%d runes (cut %v): %q", n, cut, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || (unicode.IsSpace(r) && r != ' ') || r == utf8.RuneError {
				t.Fatalf("%U in %q", r, out)
			}
		}
		if strings.Contains(out, "  ") || strings.HasPrefix(out, " ") || strings.HasSuffix(body, " ") && !cut {
			t.Fatalf("white space not collapsed: %q", out)
		}
		// Nothing is invented: with nothing cut, the words are the
		// sanitised input's.
		if !cut && !strings.ContainsFunc(in, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) && out != strings.Join(strings.Fields(Printable(in)), " ") {
			t.Fatalf("%q became %q", in, out)
		}
	})
}

func TestSanitizeLine(t *testing.T) {
	for in, want := range map[string]string{
		"exit\n\x1b[31mred\x1b[0m  now": "exit ?[31mred?[0m now",
		strings.Repeat("x", 205):        strings.Repeat("x", 200) + "…",
		"  \t\n":                        "",
	} {
		if got := Line(in, 200); got != want {
			t.Errorf("Line(%q) = %q, want %q", in, got, want)
		}
	}
}
