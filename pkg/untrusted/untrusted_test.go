package untrusted

import (
	"bytes"
	"strings"
	"testing"
)

func TestSanitizeStripsTerminalControl(t *testing.T) {
	var b Buffer
	_, _ = b.Write([]byte("bad \x1b]0;title\x07 name\n"))
	if got := b.String(); strings.ContainsAny(got, "\x1b\x07") {
		t.Fatalf("control characters kept: %q", got)
	}
	_, _ = b.Write(bytes.Repeat([]byte("x"), 2*maxStderr))
	if len(b.String()) > maxStderr {
		t.Fatal("stderr buffer is not bounded")
	}
}

func TestTruncate(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc..."},
		{"aé", 2, "a..."}, // é is two bytes: never cut in half
		{"", 0, ""},
	}
	for _, c := range cases {
		if got := Truncate(c.in, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
