package egress

import (
	"strings"
	"testing"
)

// The bodies are those of the official APIs, as test/agentmock plays them.
var tokenCases = []struct {
	what, contentType, body string
	in, out                 int64
}{
	{"Anthropic message", "application/json",
		`{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":25,"output_tokens":7}}`, 25, 7},
	{"Anthropic stream", "text/event-stream",
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n" +
			"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"usage\"}}\n\n" +
			"event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\r\n\r\n" +
			"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", 25, 15},
	{"OpenAI response", "application/json; charset=utf-8",
		`{"id":"resp_1","object":"response","status":"completed","output":[],"usage":{"input_tokens":40,"input_tokens_details":{"cached_tokens":0},"output_tokens":9,"total_tokens":49}}`, 40, 9},
	{"OpenAI stream", "text/event-stream; charset=utf-8",
		"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n" +
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n" +
			"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":40,\"output_tokens\":9,\"total_tokens\":49}}}", 40, 9},
	{"an event split over two data lines", "text/event-stream",
		"data: {\"type\":\"message_delta\",\ndata: \"usage\":{\"output_tokens\":3}}\n\n", 0, 3},
	{"not an API's answer", "text/plain", `{"usage":{"input_tokens":1,"output_tokens":1}}`, 0, 0},
	{"negative and absurd counts", "application/json", `{"usage":{"input_tokens":-5,"output_tokens":99999999999999999}}`, 0, 0},
	{"a broken body", "application/json", `{"usage":{"input_tokens":5`, 0, 0},
}

func scan(contentType, body string, chunk int) (int64, int64) {
	s := newTokenScanner(contentType)
	if s == nil {
		return 0, 0
	}
	for len(body) > 0 {
		n := min(chunk, len(body))
		s.Write([]byte(body[:n]))
		body = body[n:]
	}
	return s.finish()
}

func TestTokenScanner(t *testing.T) {
	for _, tc := range tokenCases {
		for _, chunk := range []int{1, 7, 1 << 20} {
			if in, out := scan(tc.contentType, tc.body, chunk); in != tc.in || out != tc.out {
				t.Errorf("%s in chunks of %d: %d in, %d out; want %d, %d", tc.what, chunk, in, out, tc.in, tc.out)
			}
		}
	}
}

// An event larger than the scanner keeps is not counted, and does not
// spoil the events after it.
func TestTokenScannerBoundsWhatItKeeps(t *testing.T) {
	huge := "data: {\"usage\":{\"input_tokens\":1},\"pad\":\"" + strings.Repeat("x", maxScannedEvent) + "\"}\n\n"
	body := huge + "data: {\"usage\":{\"output_tokens\":2}}\n\n"
	if in, out := scan("text/event-stream", body, 4096); in != 0 || out != 2 {
		t.Fatalf("%d in, %d out; want 0, 2", in, out)
	}
}

// Whatever an API (or a host that answers in its place) sends, the
// scanner neither fails nor depends on how the bytes were split.
func FuzzTokenScanner(f *testing.F) {
	for _, tc := range tokenCases {
		f.Add(tc.contentType == "text/event-stream" || strings.HasPrefix(tc.contentType, "text/event-stream;"), tc.body, uint8(3))
	}
	f.Fuzz(func(t *testing.T, sse bool, body string, chunk uint8) {
		ct := "application/json"
		if sse {
			ct = "text/event-stream"
		}
		in, out := scan(ct, body, len(body)+1)
		in2, out2 := scan(ct, body, int(chunk)+1)
		if in != in2 || out != out2 || in < 0 || out < 0 {
			t.Fatalf("whole: %d %d; in chunks of %d: %d %d", in, out, int(chunk)+1, in2, out2)
		}
	})
}
