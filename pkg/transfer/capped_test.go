package transfer

import (
	"bytes"
	"errors"
	"testing"
)

func TestCappedWriterKeepsWhatFitsAndStopsAtTheFirstByteOver(t *testing.T) {
	for _, tc := range []struct {
		name     string
		limit    int64
		writes   []string
		want     string
		exceeded bool
	}{
		{"under", 10, []string{"abc", "def"}, "abcdef", false},
		{"exactly", 6, []string{"abc", "def"}, "abcdef", false},
		{"over in the second write", 5, []string{"abc", "def"}, "abcde", true},
		{"zero takes nothing", 0, []string{"a"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			stopped := false
			c := &cappedWriter{w: &buf, limit: tc.limit, stop: func() { stopped = true }}
			var err error
			for _, w := range tc.writes {
				if _, err = c.Write([]byte(w)); err != nil {
					break
				}
			}
			if buf.String() != tc.want || c.exceeded != tc.exceeded || stopped != tc.exceeded {
				t.Errorf("kept %q, exceeded %v, stopped %v; want %q, %v", buf.String(), c.exceeded, stopped, tc.want, tc.exceeded)
			}
			if tc.exceeded != errors.Is(err, errExtractionStopped) {
				t.Errorf("write error %v", err)
			}
		})
	}
}
