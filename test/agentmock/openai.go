package agentmock

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// OpenAI's Responses API, as its documentation describes it: a request of
// model, input items and tools; an answer that is one response object, or,
// streamed, response.created and response.in_progress, then per output item
// response.output_item.added, its deltas (response.output_text.delta inside
// a content part for a message, response.function_call_arguments.delta for
// a function call, response.custom_tool_call_input.delta for a custom tool
// call), their .done events and response.output_item.done, and last
// response.completed with the whole output and its usage. Every event
// carries a sequence_number.

type responsesRequest struct {
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
	Tools  []struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tools"`
	Input json.RawMessage `json:"input"`
}

// inputItem holds the fields of the input items the mock reads: the
// outputs of its tool calls, as the agent sends them back.
type inputItem struct {
	Type   string `json:"type"`
	CallID string `json:"call_id"`
	Output any    `json:"output"`
}

func openAIErrorTypeCode(status int) (string, any) {
	switch status {
	case http.StatusUnauthorized:
		return "invalid_request_error", "invalid_api_key"
	case http.StatusTooManyRequests:
		return "rate_limit_error", "rate_limit_exceeded"
	case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		return "invalid_request_error", nil
	default:
		return "server_error", nil
	}
}

func openAIError(w http.ResponseWriter, rec *Request, f Failure) {
	typ, code := openAIErrorTypeCode(f.Status)
	if f.Type != "" {
		typ = f.Type
	}
	rec.Status = f.Status
	w.Header().Set("x-request-id", "req_agentmock")
	writeJSON(w, f.Status, map[string]any{
		"error": map[string]any{"message": f.Message, "type": typ, "param": nil, "code": code},
	})
}

func (s *Server) responses(w http.ResponseWriter, body []byte, rec *Request) {
	var req responsesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.fail(fmt.Errorf("POST %s: %w", rec.Path, err))
		openAIError(w, rec, Failure{Status: http.StatusBadRequest, Message: "agentmock: " + err.Error()})
		return
	}
	rec.Model, rec.Stream = req.Model, req.Stream
	kinds := map[string]string{}
	for _, t := range req.Tools {
		name := t.Name
		if name == "" {
			name = t.Type // a built-in tool (web_search, local_shell) has only its type
		}
		rec.Tools = append(rec.Tools, name)
		kinds[name] = t.Type
	}
	if f := s.failure(rec); f != nil {
		openAIError(w, rec, *f)
		return
	}
	if len(req.Tools) == 0 {
		writeResponse(w, rec, req, Step{Text: "agentmock"}, "", "")
		return
	}
	results := map[string]toolResult{}
	var items []inputItem
	if json.Unmarshal(req.Input, &items) == nil { // a plain string input holds no results
		for _, it := range items {
			if it.Type == "function_call_output" || it.Type == "custom_tool_call_output" {
				results[it.CallID] = toolResult{text: texts(it.Output)}
			}
		}
	}
	i, err := s.opts.Codex.next("call", results, rec.Tools)
	if err != nil {
		s.fail(fmt.Errorf("openai: %w", err))
		openAIError(w, rec, Failure{Status: http.StatusBadRequest, Message: "agentmock: " + err.Error()})
		return
	}
	rec.Step = i
	st := s.opts.Codex[i]
	writeResponse(w, rec, req, st, callID("call", i), kinds[st.Tool])
}

// writeResponse answers one step, streamed or whole. kind is the type the
// agent gave the step's tool: "custom" for a free-form tool, else a
// function.
func writeResponse(w http.ResponseWriter, rec *Request, req responsesRequest, st Step, id, kind string) {
	respID := "resp_agentmock"
	if id != "" {
		respID = "resp_" + id
	}
	created := time.Now().Unix()
	response := func(status string, output []any, usage any) map[string]any {
		return map[string]any{
			"id": respID, "object": "response", "created_at": created, "status": status,
			"model": req.Model, "output": output, "usage": usage,
			"error": nil, "incomplete_details": nil, "parallel_tool_calls": true, "tool_choice": "auto", "tools": []any{},
		}
	}
	var done []any // each output item, whole
	msg := map[string]any{
		"id": "msg_" + respID, "type": "message", "status": "completed", "role": "assistant",
		"content": []any{map[string]any{"type": "output_text", "text": st.Text, "annotations": []any{}}},
	}
	if st.Text != "" {
		done = append(done, msg)
	}
	var call map[string]any
	switch {
	case st.Tool == "":
	case kind == "custom":
		call = map[string]any{"id": "ctc_" + id, "type": "custom_tool_call", "status": "completed", "call_id": id, "name": st.Tool, "input": st.Input}
	default:
		call = map[string]any{"id": "fc_" + id, "type": "function_call", "status": "completed", "call_id": id, "name": st.Tool, "arguments": st.Input}
	}
	if call != nil {
		done = append(done, call)
	}
	in, out := 1+rec.BodySize/4, 1+(len(st.Text)+len(st.Input))/4
	usage := map[string]any{
		"input_tokens": in, "input_tokens_details": map[string]any{"cached_tokens": 0},
		"output_tokens": out, "output_tokens_details": map[string]any{"reasoning_tokens": 0},
		"total_tokens": in + out,
	}
	rec.Status = http.StatusOK
	w.Header().Set("x-request-id", "req_agentmock")
	if !req.Stream {
		writeJSON(w, http.StatusOK, response("completed", done, usage))
		return
	}
	e := newSSE(w)
	seq := 0
	ev := func(name string, data map[string]any) {
		data["type"] = name
		data["sequence_number"] = seq
		seq++
		e.event(name, data)
	}
	ev("response.created", map[string]any{"response": response("in_progress", []any{}, nil)})
	ev("response.in_progress", map[string]any{"response": response("in_progress", []any{}, nil)})
	index := 0
	if st.Text != "" {
		itemID := msg["id"]
		ev("response.output_item.added", map[string]any{"output_index": index, "item": map[string]any{
			"id": itemID, "type": "message", "status": "in_progress", "role": "assistant", "content": []any{},
		}})
		ev("response.content_part.added", map[string]any{"item_id": itemID, "output_index": index, "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
		for _, part := range halves(st.Text) {
			ev("response.output_text.delta", map[string]any{"item_id": itemID, "output_index": index, "content_index": 0, "delta": part, "logprobs": []any{}})
		}
		ev("response.output_text.done", map[string]any{"item_id": itemID, "output_index": index, "content_index": 0, "text": st.Text, "logprobs": []any{}})
		ev("response.content_part.done", map[string]any{"item_id": itemID, "output_index": index, "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": st.Text, "annotations": []any{}}})
		ev("response.output_item.done", map[string]any{"output_index": index, "item": msg})
		index++
	}
	if call != nil {
		itemID := call["id"]
		added := map[string]any{}
		for k, v := range call {
			added[k] = v
		}
		added["status"] = "in_progress"
		delta, doneEvent, field := "response.function_call_arguments.delta", "response.function_call_arguments.done", "arguments"
		if kind == "custom" {
			delta, doneEvent, field = "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done", "input"
		}
		added[field] = ""
		ev("response.output_item.added", map[string]any{"output_index": index, "item": added})
		for _, part := range halves(st.Input) {
			ev(delta, map[string]any{"item_id": itemID, "output_index": index, "delta": part})
		}
		ev(doneEvent, map[string]any{"item_id": itemID, "output_index": index, field: st.Input})
		ev("response.output_item.done", map[string]any{"output_index": index, "item": call})
	}
	ev("response.completed", map[string]any{"response": response("completed", done, usage)})
}
