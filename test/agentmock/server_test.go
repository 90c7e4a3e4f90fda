package agentmock

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The mock's own rules, without an agent: which step a request reaches,
// what it checks, and the error shapes. The agents' tests (agents_test.go)
// show that the published CLIs read what it writes.

func post(t *testing.T, url, path string, body any) (*http.Response, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+path, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

type event struct {
	name string
	data map[string]any
}

// events reads a stream of Server-Sent Events as the spec frames them:
// fields until a blank line.
func events(t *testing.T, body []byte) []event {
	t.Helper()
	var out []event
	var cur event
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name == "" || cur.data == nil {
				t.Fatalf("an event without a name or data in:\n%s", body)
			}
			out = append(out, cur)
			cur = event{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data); err != nil {
				t.Fatalf("data of %s is not JSON: %v", cur.name, err)
			}
			if cur.data["type"] != cur.name {
				t.Errorf("event %s carries type %v", cur.name, cur.data["type"])
			}
		default:
			t.Fatalf("a line that is no field: %q", line)
		}
	}
	if cur.name != "" {
		t.Fatalf("the stream ends inside event %s", cur.name)
	}
	return out
}

func names(evs []event) string {
	var n []string
	for _, e := range evs {
		n = append(n, e.name)
	}
	return strings.Join(n, " ")
}

var twoSteps = Script{
	{Text: "reading", Tool: "Read", Input: `{"file_path":"/repo/greeting.txt"}`, Want: []string{"hello"}},
	{Text: FinalText},
}

func anthropicTools(names ...string) []any {
	var out []any
	for _, n := range names {
		out = append(out, map[string]any{"name": n, "input_schema": map[string]any{"type": "object"}})
	}
	return out
}

func toolResultMessage(id, content string, isError bool) map[string]any {
	return map[string]any{"role": "user", "content": []any{
		map[string]any{"type": "tool_result", "tool_use_id": id, "content": []any{map[string]any{"type": "text", "text": content}}, "is_error": isError},
	}}
}

func TestMessagesStreamPlaysTheScript(t *testing.T) {
	m := New(Options{Claude: twoSteps})
	ts := httptest.NewServer(m)
	defer ts.Close()
	user := map[string]any{"role": "user", "content": "make it greet the agent"}

	resp, body := post(t, ts.URL, "/v1/messages", map[string]any{"model": "m", "stream": true, "tools": anthropicTools("Read", "Bash"), "messages": []any{user}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	evs := events(t, body)
	want := "message_start ping content_block_start content_block_delta content_block_delta content_block_stop " +
		"content_block_start content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if got := names(evs); got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	tool := evs[6].data["content_block"].(map[string]any)
	if tool["type"] != "tool_use" || tool["name"] != "Read" || tool["id"] != callID("toolu", 0) {
		t.Errorf("tool block %v", tool)
	}
	var input string
	for _, e := range evs[7:9] {
		input += e.data["delta"].(map[string]any)["partial_json"].(string)
	}
	if input != twoSteps[0].Input {
		t.Errorf("input deltas add up to %s, want %s", input, twoSteps[0].Input)
	}
	if stop := evs[10].data["delta"].(map[string]any)["stop_reason"]; stop != "tool_use" {
		t.Errorf("stop_reason %v, want tool_use", stop)
	}

	// The result comes back: the next step, the final text, is played.
	assistant := map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": callID("toolu", 0), "name": "Read", "input": map[string]any{}}}}
	_, body = post(t, ts.URL, "/v1/messages", map[string]any{"model": "m", "stream": true, "tools": anthropicTools("Read"),
		"messages": []any{user, assistant, toolResultMessage(callID("toolu", 0), "1\thello\n", false)}})
	evs = events(t, body)
	if got, want := names(evs), "message_start ping content_block_start content_block_delta content_block_delta content_block_stop message_delta message_stop"; got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	text := evs[3].data["delta"].(map[string]any)["text"].(string) + evs[4].data["delta"].(map[string]any)["text"].(string)
	if text != FinalText {
		t.Errorf("text %q, want %q", text, FinalText)
	}
	if stop := evs[6].data["delta"].(map[string]any)["stop_reason"]; stop != "end_turn" {
		t.Errorf("stop_reason %v, want end_turn", stop)
	}
	if err := m.Err(); err != nil {
		t.Error(err)
	}
	if got := m.StepsPlayed(Anthropic); got != 1 {
		t.Errorf("steps played up to %d, want 1", got)
	}
}

func TestMessagesWhole(t *testing.T) {
	ts := httptest.NewServer(New(Options{Claude: twoSteps}))
	defer ts.Close()
	resp, body := post(t, ts.URL, "/v1/messages", map[string]any{"model": "m", "tools": anthropicTools("Read"), "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
	var msg struct {
		Type       string `json:"type"`
		Model      string `json:"model"`
		StopReason string `json:"stop_reason"`
		Content    []struct {
			Type  string         `json:"type"`
			ID    string         `json:"id"`
			Input map[string]any `json:"input"`
		} `json:"content"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v:\n%s", resp.StatusCode, err, body)
	}
	if msg.Type != "message" || msg.Model != "m" || msg.StopReason != "tool_use" || len(msg.Content) != 2 ||
		msg.Content[1].Type != "tool_use" || msg.Content[1].Input["file_path"] != "/repo/greeting.txt" {
		t.Errorf("message %+v", msg)
	}
}

func TestResponsesStreamPlaysTheScript(t *testing.T) {
	sc := Script{
		{Tool: "exec_command", Input: `{"cmd":"cat greeting.txt"}`, Want: []string{"hello"}},
		{Text: "patching", Tool: "apply_patch", Input: "*** Begin Patch\n*** End Patch\n"},
		{Text: FinalText},
	}
	m := New(Options{Codex: sc})
	ts := httptest.NewServer(m)
	defer ts.Close()
	tools := []any{map[string]any{"type": "function", "name": "exec_command"}, map[string]any{"type": "custom", "name": "apply_patch"}, map[string]any{"type": "web_search"}}
	user := map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "go"}}}

	_, body := post(t, ts.URL, "/v1/responses", map[string]any{"model": "m", "stream": true, "tools": tools, "input": []any{user}})
	evs := events(t, body)
	if got, want := names(evs), "response.created response.in_progress response.output_item.added response.function_call_arguments.delta "+
		"response.function_call_arguments.delta response.function_call_arguments.done response.output_item.done response.completed"; got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	for i, e := range evs {
		if e.data["sequence_number"] != float64(i) {
			t.Errorf("event %d (%s) has sequence_number %v", i, e.name, e.data["sequence_number"])
		}
	}
	item := evs[6].data["item"].(map[string]any)
	if item["type"] != "function_call" || item["call_id"] != callID("call", 0) || item["arguments"] != sc[0].Input {
		t.Errorf("item %v", item)
	}

	out := map[string]any{"type": "function_call_output", "call_id": callID("call", 0), "output": "Process exited with code 0\nOutput:\nhello\n"}
	_, body = post(t, ts.URL, "/v1/responses", map[string]any{"model": "m", "stream": true, "tools": tools, "input": []any{user, out}})
	evs = events(t, body)
	if got, want := names(evs), "response.created response.in_progress response.output_item.added response.content_part.added "+
		"response.output_text.delta response.output_text.delta response.output_text.done response.content_part.done response.output_item.done "+
		"response.output_item.added response.custom_tool_call_input.delta response.custom_tool_call_input.delta response.custom_tool_call_input.done "+
		"response.output_item.done response.completed"; got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	item = evs[13].data["item"].(map[string]any)
	if item["type"] != "custom_tool_call" || item["input"] != sc[1].Input {
		t.Errorf("custom call %v", item)
	}
	completed := evs[14].data["response"].(map[string]any)
	if completed["status"] != "completed" || len(completed["output"].([]any)) != 2 || completed["usage"].(map[string]any)["total_tokens"] == nil {
		t.Errorf("completed response %v", completed)
	}

	custom := map[string]any{"type": "custom_tool_call_output", "call_id": callID("call", 1), "output": "Success."}
	_, body = post(t, ts.URL, "/v1/responses", map[string]any{"model": "m", "stream": true, "tools": tools, "input": []any{user, out, custom}})
	if evs := events(t, body); evs[len(evs)-1].name != "response.completed" || evs[4].data["delta"] == nil {
		t.Errorf("final text events: %s", names(evs))
	}
	if err := m.Err(); err != nil {
		t.Error(err)
	}
	if got := m.StepsPlayed(OpenAI); got != 2 {
		t.Errorf("steps played up to %d, want 2", got)
	}
}

// TestConversationGoesWrong: every way the agent's side can stray from the
// script is an API error the agent sees, and an error of Err.
func TestConversationGoesWrong(t *testing.T) {
	user := map[string]any{"role": "user", "content": "hi"}
	call := map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": callID("toolu", 0), "name": "Read", "input": map[string]any{}}}}
	for _, tc := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"result lacks what the step wants",
			map[string]any{"tools": anthropicTools("Read"), "messages": []any{user, call, toolResultMessage(callID("toolu", 0), "goodbye", false)}},
			`lacks "hello"`},
		{"the tool failed",
			map[string]any{"tools": anthropicTools("Read"), "messages": []any{user, call, toolResultMessage(callID("toolu", 0), "hello: no such file", true)}},
			"tool Read failed"},
		{"a tool the agent does not offer",
			map[string]any{"tools": anthropicTools("Bash", "Edit"), "messages": []any{user}},
			`"Read", which the agent did not offer (it offered Bash, Edit)`},
		{"asked again after the end",
			map[string]any{"tools": anthropicTools("Read"), "messages": []any{user, call, toolResultMessage(callID("toolu", 0), "hello", false), toolResultMessage(callID("toolu", 1), "x", false)}},
			""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := twoSteps
			if tc.want == "" { // a script whose last step is a call can be asked past its end
				sc = twoSteps[:1]
				tc.want = "the conversation is over"
			}
			m := New(Options{Claude: sc})
			ts := httptest.NewServer(m)
			defer ts.Close()
			resp, body := post(t, ts.URL, "/v1/messages", tc.body)
			var e struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusBadRequest || e.Type != "error" || e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, tc.want) {
				t.Errorf("status %d, error %+v; want 400 invalid_request_error saying %q", resp.StatusCode, e, tc.want)
			}
			if err := m.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Err() = %v, want it to say %q", err, tc.want)
			}
			if got := m.StepsPlayed(Anthropic); got != -1 {
				t.Errorf("a step was played: %d", got)
			}
		})
	}
}

func TestResponsesResultLacksWhatTheStepWants(t *testing.T) {
	m := New(Options{Codex: Script{{Tool: "exec_command", Input: `{}`, Want: []string{"hello"}}, {Text: "done"}}})
	ts := httptest.NewServer(m)
	defer ts.Close()
	resp, body := post(t, ts.URL, "/v1/responses", map[string]any{
		"tools": []any{map[string]any{"type": "function", "name": "exec_command"}},
		"input": []any{map[string]any{"type": "function_call_output", "call_id": callID("call", 0), "output": []any{map[string]any{"type": "input_text", "text": "goodbye"}}}},
	})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"type":"invalid_request_error"`) {
		t.Errorf("status %d:\n%s", resp.StatusCode, body)
	}
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), `lacks "hello"`) {
		t.Errorf("Err() = %v", err)
	}
}

func TestFailureShapes(t *testing.T) {
	for _, tc := range []struct {
		fail       Failure
		path, want string
	}{
		{Failure{Status: 401, Message: "bad key"}, "/v1/messages", `{"error":{"message":"bad key","type":"authentication_error"},"request_id":"req_agentmock","type":"error"}`},
		{Failure{Status: 529, Message: "Overloaded"}, "/v1/messages", `{"error":{"message":"Overloaded","type":"overloaded_error"},"request_id":"req_agentmock","type":"error"}`},
		{Failure{Status: 500, Type: "api_error", Message: "boom"}, "/v1/messages", `{"error":{"message":"boom","type":"api_error"},"request_id":"req_agentmock","type":"error"}`},
		{Failure{Status: 401, Message: "bad key"}, "/v1/responses", `{"error":{"code":"invalid_api_key","message":"bad key","param":null,"type":"invalid_request_error"}}`},
		{Failure{Status: 429, Message: "slow down"}, "/v1/responses", `{"error":{"code":"rate_limit_exceeded","message":"slow down","param":null,"type":"rate_limit_error"}}`},
		{Failure{Status: 500, Message: "boom"}, "/v1/responses", `{"error":{"code":null,"message":"boom","param":null,"type":"server_error"}}`},
	} {
		m := New(Options{Claude: twoSteps, Codex: twoSteps, Fail: &tc.fail})
		ts := httptest.NewServer(m)
		resp, body := post(t, ts.URL, tc.path, map[string]any{"model": "m", "stream": true, "tools": anthropicTools("Read")})
		ts.Close()
		if resp.StatusCode != tc.fail.Status || strings.TrimSpace(string(body)) != tc.want {
			t.Errorf("%s with %+v: status %d\n%s\nwant\n%s", tc.path, tc.fail, resp.StatusCode, body, tc.want)
		}
		if reqs := m.Requests(); len(reqs) != 1 || reqs[0].Status != tc.fail.Status || reqs[0].Step != -1 || reqs[0].Model != "m" {
			t.Errorf("recorded %+v", reqs)
		}
	}
}

func TestRecordsEveryRequest(t *testing.T) {
	m := New(Options{Claude: twoSteps})
	ts := httptest.NewServer(m)
	defer ts.Close()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/v1/messages?beta=true", strings.NewReader(`{"model":"small","messages":[{"role":"user","content":"title this"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", "fake")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	for _, path := range []string{"/v1/models", "/v1/messages/count_tokens"} {
		resp, _ := post(t, ts.URL, path, map[string]any{})
		_ = resp
	}
	resp, _ = post(t, ts.URL, "/v1/messages", "not an object")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a body that is no request: status %d", resp.StatusCode)
	}

	reqs := m.Requests()
	if len(reqs) != 4 {
		t.Fatalf("recorded %d requests, want 4", len(reqs))
	}
	side := reqs[0]
	if side.API != Anthropic || side.Path != "/v1/messages" || side.Host != strings.TrimPrefix(ts.URL, "http://") || side.RawQuery != "beta=true" || side.Header.Get("X-Api-Key") != "fake" ||
		side.Model != "small" || side.Step != -1 || side.Status != http.StatusOK || side.BodySize == 0 {
		t.Errorf("side request recorded as %+v", side)
	}
	if reqs[1].Status != http.StatusNotFound || reqs[1].API != "" {
		t.Errorf("an unknown path recorded as %+v", reqs[1])
	}
	if reqs[2].Status != http.StatusOK || reqs[2].API != Anthropic {
		t.Errorf("count_tokens recorded as %+v", reqs[2])
	}
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "cannot unmarshal") {
		t.Errorf("Err() = %v, want the body that was no request", err)
	}
	if m.StepsPlayed(Anthropic) != -1 {
		t.Errorf("a side request moved the conversation")
	}
}

func TestStateHandler(t *testing.T) {
	var seen []Request
	m := New(Options{Claude: twoSteps, OnRequest: func(r Request) { seen = append(seen, r) }})
	ts := httptest.NewServer(m)
	defer ts.Close()
	post(t, ts.URL, "/v1/messages", map[string]any{"model": "m", "tools": anthropicTools("Bash"), "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
	if len(seen) != 1 || seen[0].Status != http.StatusBadRequest {
		t.Errorf("OnRequest saw %+v", seen)
	}
	state := httptest.NewServer(m.StateHandler())
	defer state.Close()
	for _, bodies := range []bool{false, true} {
		url := state.URL
		if bodies {
			url += "?bodies=1"
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var st State
		err = json.NewDecoder(resp.Body).Decode(&st)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Requests) != 1 || st.Requests[0].Path != "/v1/messages" || st.Steps[Anthropic] != -1 ||
			len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "did not offer") {
			t.Errorf("state %+v", st)
		}
		if got := len(st.Requests[0].Body) > 0; got != bodies {
			t.Errorf("with bodies=%v the state has a body: %v", bodies, got)
		}
	}
	resp, _ := post(t, state.URL, "", map[string]any{})
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST to the state: %d", resp.StatusCode)
	}
}

// TestFailKey: with FailKey, only requests carrying that key fail; another
// key, in either API's header, plays the conversation.
func TestFailKey(t *testing.T) {
	m := New(Options{Claude: twoSteps, Codex: twoSteps, Fail: &Failure{Status: 500, Message: "boom"}, FailKey: "sk-fails"})
	ts := httptest.NewServer(m)
	defer ts.Close()
	body := `{"model":"m","tools":[{"name":"Read"}],"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		path, header, value string
		want                int
	}{
		{"/v1/messages", "X-Api-Key", "sk-fails", 500},
		{"/v1/messages", "X-Api-Key", "sk-plays", 200},
		{"/v1/messages", "Authorization", "Bearer sk-fails", 500},
		{"/v1/responses", "Authorization", "Bearer sk-plays", 200},
		{"/v1/messages", "", "", 200},
	} {
		req, err := http.NewRequest(http.MethodPost, ts.URL+tc.path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.header != "" {
			req.Header.Set(tc.header, tc.value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s with %s %q: status %d, want %d", tc.path, tc.header, tc.value, resp.StatusCode, tc.want)
		}
	}
	if got := Credential(m.Requests()[2].Header); got != "sk-fails" {
		t.Errorf("Credential of a bearer token = %q, want the token", got)
	}
}
