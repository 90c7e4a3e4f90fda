package sandbox

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"
)

// statusLine is what the sandbox's shell may send after a command's end
// marker: an exit status, and the verdict on what the command left behind.
var statusLine = regexp.MustCompile(`^[0-9]{1,10}( [A-Za-z0-9-]{1,64})?$`)

// The status line after the marker is read exactly as statusLine says,
// however the stream is cut, and what the sandbox sends beyond it never
// passes for a status or a verdict.
func FuzzShellStatus(f *testing.F) {
	f.Add([]byte("0 0123456789abcdef0123456789abcdef"), uint8(1))
	f.Add([]byte("127 -"), uint8(3))
	f.Add([]byte("3"), uint8(2))
	f.Add([]byte("12ab"), uint8(5))
	f.Add([]byte("1 a b"), uint8(4))
	f.Add([]byte("99999999999"), uint8(16))
	f.Fuzz(func(t *testing.T, line []byte, chunk uint8) {
		if bytes.IndexByte(line, '\n') >= 0 {
			return // the line ends at its first newline
		}
		end := "AK-END-0123456789abcdef0123456789abcdef"
		stream := []byte("out\n\n" + end + " " + string(line) + "\nafter")
		var sink bytes.Buffer
		d := &demux{}
		done := d.expect([]byte("\n"+end+" "), true, &sink)
		size := int(chunk)%17 + 1
		for len(stream) > 0 {
			n := min(size, len(stream))
			_, _ = d.Write(stream[:n])
			stream = stream[n:]
		}
		var r result
		select {
		case r = <-done:
		default:
			t.Fatal("no result")
		}
		if !statusLine.Match(line) {
			if r.err == nil {
				t.Fatalf("%q passed for a status line: %d %q", line, r.code, r.verdict)
			}
			return
		}
		digits, verdict, _ := bytes.Cut(line, []byte(" "))
		code, _ := strconv.Atoi(string(digits))
		if r.err != nil || r.code != code || !bytes.Equal(r.verdict, verdict) || sink.String() != "out\n" {
			t.Fatalf("%q: %d %q %v, output %q", line, r.code, r.verdict, r.err, sink.String())
		}
	})
}
