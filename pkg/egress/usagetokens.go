package egress

import (
	"bytes"
	"encoding/json"
	"mime"
)

// tokenScanner reads the token counts a model API reports, from a response
// body as it streams past: Anthropic Messages (a message's usage; the
// message_start and message_delta events) and OpenAI Responses (a
// response's usage; the response.completed event), as JSON or as
// server-sent events. It keeps a bounded copy of one event (or of a JSON
// body), never the stream; what does not fit is not counted.
type tokenScanner struct {
	sse     bool
	buf     []byte // a JSON body, or the SSE line being read
	data    []byte // the SSE event being read (its data lines)
	dropped bool   // buf outgrew its bound: ignored until the next line
	in, out int64
}

const (
	maxScannedJSON  = 4 << 20
	maxScannedEvent = 1 << 20
	maxTokens       = 1 << 40 // a count beyond is not a count
)

// newTokenScanner returns a scanner for a response of that Content-Type,
// or nil if it is neither JSON nor an event stream.
func newTokenScanner(contentType string) *tokenScanner {
	mt, _, err := mime.ParseMediaType(contentType)
	switch {
	case err != nil:
		return nil
	case mt == "text/event-stream":
		return &tokenScanner{sse: true}
	case mt == "application/json":
		return &tokenScanner{}
	}
	return nil
}

func (s *tokenScanner) Write(b []byte) {
	if !s.sse {
		if len(s.buf)+len(b) > maxScannedJSON {
			s.dropped = true
		}
		if !s.dropped {
			s.buf = append(s.buf, b...)
		}
		return
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.appendLine(b)
			return
		}
		s.appendLine(b[:i])
		s.line()
		b = b[i+1:]
	}
}

func (s *tokenScanner) appendLine(b []byte) {
	if len(s.buf)+len(b) > maxScannedEvent {
		s.dropped = true
	}
	if !s.dropped {
		s.buf = append(s.buf, b...)
	}
}

// line handles one complete SSE line: data lines make up the event, an
// empty line ends it.
func (s *tokenScanner) line() {
	l := bytes.TrimSuffix(s.buf, []byte("\r"))
	dropped := s.dropped
	s.buf, s.dropped = s.buf[:0], false
	switch {
	case dropped:
		s.data = nil
	case len(l) == 0:
		if len(s.data) > 0 {
			s.event(s.data)
		}
		s.data = s.data[:0]
	case bytes.HasPrefix(l, []byte("data:")):
		d := bytes.TrimPrefix(bytes.TrimPrefix(l, []byte("data:")), []byte(" "))
		if len(s.data)+len(d)+1 > maxScannedEvent {
			s.data = nil
			return
		}
		if len(s.data) > 0 {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, d...)
	}
}

type usageFields struct {
	In  *int64 `json:"input_tokens"`
	Out *int64 `json:"output_tokens"`
}

type withUsage struct {
	Usage *usageFields `json:"usage"`
}

// event reads one JSON object: an Anthropic message or event, an OpenAI
// response or event. The counts are cumulative: the last one said holds.
func (s *tokenScanner) event(b []byte) {
	var v struct {
		withUsage
		Message  *withUsage `json:"message"`
		Response *withUsage `json:"response"`
	}
	if json.Unmarshal(b, &v) != nil {
		return
	}
	for _, w := range []*withUsage{v.Message, &v.withUsage, v.Response} {
		if w == nil || w.Usage == nil {
			continue
		}
		if n := w.Usage.In; n != nil && *n >= 0 && *n < maxTokens {
			s.in = *n
		}
		if n := w.Usage.Out; n != nil && *n >= 0 && *n < maxTokens {
			s.out = *n
		}
	}
}

// finish returns the counts, once the body has ended.
func (s *tokenScanner) finish() (in, out int64) {
	switch {
	case s.sse:
		// A stream whose last event had no blank line after it.
		s.line()
		s.line()
	case !s.dropped:
		s.event(s.buf)
	}
	return s.in, s.out
}
