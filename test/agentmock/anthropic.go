package agentmock

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Anthropic's Messages API, as its documentation describes it: a request of
// model, messages and tools; an answer that is one message, or, streamed,
// the events message_start, content_block_start / content_block_delta /
// content_block_stop per block (text_delta for text, input_json_delta for a
// tool_use block's input), message_delta with the stop reason and the
// output's usage, and message_stop.

type messagesRequest struct {
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
	Tools  []struct {
		Name string `json:"name"`
	} `json:"tools"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// contentBlock is a block of a message's content, the fields of the kinds
// the mock reads: tool_result, as the agent sends it back.
type contentBlock struct {
	Type      string `json:"type"`
	ToolUseID string `json:"tool_use_id"`
	Content   any    `json:"content"`
	IsError   bool   `json:"is_error"`
}

func anthropicErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	default:
		return "api_error"
	}
}

func anthropicError(w http.ResponseWriter, rec *Request, f Failure) {
	if f.Type == "" {
		f.Type = anthropicErrorType(f.Status)
	}
	rec.Status = f.Status
	w.Header().Set("request-id", "req_agentmock")
	writeJSON(w, f.Status, map[string]any{
		"type":       "error",
		"error":      map[string]any{"type": f.Type, "message": f.Message},
		"request_id": "req_agentmock",
	})
}

func (s *Server) messages(w http.ResponseWriter, body []byte, rec *Request) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.fail(fmt.Errorf("POST %s: %w", rec.Path, err))
		anthropicError(w, rec, Failure{Status: http.StatusBadRequest, Message: "agentmock: " + err.Error()})
		return
	}
	rec.Model, rec.Stream = req.Model, req.Stream
	for _, t := range req.Tools {
		rec.Tools = append(rec.Tools, t.Name)
	}
	if f := s.failure(rec); f != nil {
		anthropicError(w, rec, *f)
		return
	}
	// A request without tools is the agent's side work (a title, a
	// summary): it gets a short text and leaves the conversation alone.
	if len(req.Tools) == 0 {
		writeMessage(w, rec, req, Step{Text: "agentmock"}, "")
		return
	}
	results := map[string]toolResult{}
	for _, m := range req.Messages {
		if m.Role != "user" {
			continue
		}
		var blocks []contentBlock
		if json.Unmarshal(m.Content, &blocks) != nil {
			continue // a plain string: no tool results in it
		}
		for _, b := range blocks {
			if b.Type == "tool_result" {
				results[b.ToolUseID] = toolResult{text: texts(b.Content), isError: b.IsError}
			}
		}
	}
	i, err := s.opts.Claude.next("toolu", results, rec.Tools)
	if err != nil {
		s.fail(fmt.Errorf("anthropic: %w", err))
		anthropicError(w, rec, Failure{Status: http.StatusBadRequest, Message: "agentmock: " + err.Error()})
		return
	}
	rec.Step = i
	writeMessage(w, rec, req, s.opts.Claude[i], callID("toolu", i))
}

// writeMessage answers one step, streamed or whole.
func writeMessage(w http.ResponseWriter, rec *Request, req messagesRequest, st Step, id string) {
	var input map[string]any
	if st.Tool != "" {
		if err := json.Unmarshal([]byte(st.Input), &input); err != nil {
			anthropicError(w, rec, Failure{Status: http.StatusInternalServerError, Message: "agentmock: step input is not a JSON object: " + err.Error()})
			return
		}
	}
	stop := "end_turn"
	if st.Tool != "" {
		stop = "tool_use"
	}
	usage := map[string]any{"input_tokens": 1 + rec.BodySize/4, "output_tokens": 1 + (len(st.Text)+len(st.Input))/4}
	msgID := "msg_agentmock"
	if id != "" {
		msgID = "msg_" + id
	}
	rec.Status = http.StatusOK
	w.Header().Set("request-id", "req_agentmock")
	if !req.Stream {
		var content []any
		if st.Text != "" {
			content = append(content, map[string]any{"type": "text", "text": st.Text})
		}
		if st.Tool != "" {
			content = append(content, map[string]any{"type": "tool_use", "id": id, "name": st.Tool, "input": input})
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": msgID, "type": "message", "role": "assistant", "model": req.Model,
			"content": content, "stop_reason": stop, "stop_sequence": nil, "usage": usage,
		})
		return
	}
	e := newSSE(w)
	e.event("message_start", map[string]any{
		"type": "message_start",
		"message": map[string]any{
			"id": msgID, "type": "message", "role": "assistant", "model": req.Model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": usage["input_tokens"], "output_tokens": 1},
		},
	})
	e.event("ping", map[string]any{"type": "ping"})
	index := 0
	if st.Text != "" {
		e.event("content_block_start", map[string]any{"type": "content_block_start", "index": index, "content_block": map[string]any{"type": "text", "text": ""}})
		for _, part := range halves(st.Text) {
			e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index, "delta": map[string]any{"type": "text_delta", "text": part}})
		}
		e.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
		index++
	}
	if st.Tool != "" {
		e.event("content_block_start", map[string]any{"type": "content_block_start", "index": index, "content_block": map[string]any{"type": "tool_use", "id": id, "name": st.Tool, "input": map[string]any{}}})
		for _, part := range halves(st.Input) {
			e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index, "delta": map[string]any{"type": "input_json_delta", "partial_json": part}})
		}
		e.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
	}
	e.event("message_delta", map[string]any{
		"type":  "message_delta",
		"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": usage["output_tokens"]},
	})
	e.event("message_stop", map[string]any{"type": "message_stop"})
}
