// Package agentmock is a scripted model API for tests: Anthropic's Messages
// API (what Claude Code calls) and OpenAI's Responses API (what Codex
// calls), each playing one short, fixed conversation, so the published agent
// CLIs can run unmodified where no model is reachable.
//
// The mock plays the model's side only. The agent's tool calls (read a
// file, edit it, run the repository's test script) really run, in the agent;
// the mock checks what each tool call returned before it plays the next
// step, and answers an API error when it did not hold what the step should
// have produced, so a conversation that went wrong makes the agent fail.
// It records every request it saw, headers and all, for tests to assert on.
//
// Test-only: nothing in the product imports it.
package agentmock

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Which API a request was for.
const (
	Anthropic = "anthropic"
	OpenAI    = "openai"
)

// Failure makes every model request answer an API error, in the API's own
// error shape: how a test makes the agent fail.
type Failure struct {
	// Status is the HTTP status, e.g. 401, 500, 529.
	Status int
	// Type is the API's error type, e.g. "authentication_error" (Anthropic)
	// or "invalid_request_error" (OpenAI); empty picks one from Status.
	Type string
	// Message is the error's message.
	Message string
}

// Options configure a Server.
type Options struct {
	// Claude is the conversation played on /v1/messages.
	Claude Script
	// Codex is the conversation played on /v1/responses.
	Codex Script
	// Fail, when set, answers every model request with this error instead
	// (with FailKey, only those carrying that key).
	Fail *Failure
	// FailKey narrows Fail to the requests whose credential (Credential)
	// is this key: one mock plays the conversation for one key and fails
	// for another, as a model API does for a key it refuses.
	FailKey string
	// OnRequest, when set, is called with each request once it is answered
	// and recorded (a log, say).
	OnRequest func(Request)
}

// Request is one request the mock saw.
type Request struct {
	// API is Anthropic or OpenAI, or empty for a path neither serves.
	API    string `json:"api,omitempty"`
	Method string `json:"method"`
	// Host is the host the request was addressed to (its Host header).
	Host string `json:"host"`
	// Path is the URL path, query left out (it is in RawQuery).
	Path     string      `json:"path"`
	RawQuery string      `json:"rawQuery,omitempty"`
	Header   http.Header `json:"header"`
	BodySize int         `json:"bodySize"`
	// Body is the request's body, as it came.
	Body []byte `json:"body,omitempty"`
	// Model and Stream are the request's fields of those names.
	Model  string `json:"model,omitempty"`
	Stream bool   `json:"stream,omitempty"`
	// Tools are the names of the tools the request offered the model.
	Tools []string `json:"tools,omitempty"`
	// Step is the index of the script's step played in answer, or -1 when
	// the request was not part of the conversation (a side request, an
	// unknown path, an error answered).
	Step int `json:"step"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
}

// Server serves both APIs. It is an http.Handler: serve it with
// httptest.NewServer or an http.Server of your own.
type Server struct {
	opts Options

	mu       sync.Mutex
	requests []Request
	failures []error
}

// New returns a Server playing opts.
func New(opts Options) *Server {
	return &Server{opts: opts}
}

// Requests returns a copy of every request seen so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// Err returns every way the conversation went wrong so far (a tool result
// without what its step should have produced, a tool the agent did not
// offer, a request the mock could not read), or nil.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.failures...)
}

// StepsPlayed returns the highest step index played for api, or -1.
func (s *Server) StepsPlayed(api string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	high := -1
	for _, r := range s.requests {
		if r.API == api && r.Step > high {
			high = r.Step
		}
	}
	return high
}

// maxBody bounds a request body: an agent's request carries its whole
// conversation, tools and system prompt, far below this.
const maxBody = 32 << 20

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	rec := Request{
		Method:   r.Method,
		Host:     r.Host,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
		BodySize: len(body),
		Body:     body,
		Step:     -1,
	}
	switch {
	case err != nil:
		rec.Status = http.StatusBadRequest
		s.fail(fmt.Errorf("%s %s: reading the body: %w", r.Method, r.URL.Path, err))
		http.Error(w, err.Error(), rec.Status)
	case len(body) > maxBody:
		rec.Status = http.StatusRequestEntityTooLarge
		s.fail(fmt.Errorf("%s %s: body over %d bytes", r.Method, r.URL.Path, maxBody))
		http.Error(w, "body too large", rec.Status)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages/count_tokens"):
		rec.API = Anthropic
		rec.Status = http.StatusOK
		// A rough count is all a client does with it.
		writeJSON(w, rec.Status, map[string]any{"input_tokens": 1 + len(body)/4})
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages"):
		rec.API = Anthropic
		s.messages(w, body, &rec)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/responses"):
		rec.API = OpenAI
		s.responses(w, body, &rec)
	default:
		// Whatever else a CLI asks at start (model lists, settings, telemetry
		// the environment did not turn off) is recorded and refused in a
		// shape both clients read as "not here".
		rec.Status = http.StatusNotFound
		writeJSON(w, rec.Status, map[string]any{
			"type":  "error",
			"error": map[string]any{"type": "not_found_error", "message": "agentmock serves no " + r.Method + " " + r.URL.Path},
		})
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	if s.opts.OnRequest != nil {
		s.opts.OnRequest(rec)
	}
}

// Credential is the key a request carried: its X-Api-Key (Anthropic), or
// its Authorization's bearer token (OpenAI, Claude Code's OAuth token).
func Credential(h http.Header) string {
	if k := h.Get("X-Api-Key"); k != "" {
		return k
	}
	return strings.TrimPrefix(h.Get("Authorization"), "Bearer ")
}

// KeyDigest names key in a log line without the key: "sha256:" and the
// first 12 hex digits of its SHA-256, or "none".
func KeyDigest(key string) string {
	if key == "" {
		return "none"
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])[:12]
}

// failure is the error rec gets instead of the conversation, or nil.
func (s *Server) failure(rec *Request) *Failure {
	if s.opts.Fail == nil || (s.opts.FailKey != "" && Credential(rec.Header) != s.opts.FailKey) {
		return nil
	}
	return s.opts.Fail
}

func (s *Server) fail(err error) {
	s.mu.Lock()
	s.failures = append(s.failures, err)
	s.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// sse writes Server-Sent Events, one flushed event at a time, as both APIs
// stream: an "event:" line naming the type, a "data:" line of JSON, a
// blank line.
type sse struct {
	w   http.ResponseWriter
	f   http.Flusher
	err error
}

func newSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sse{w: w, f: f}
}

func (e *sse) event(name string, data any) {
	if e.err != nil {
		return
	}
	b, err := json.Marshal(data)
	if err != nil {
		e.err = err
		return
	}
	if _, e.err = fmt.Fprintf(e.w, "event: %s\ndata: %s\n\n", name, b); e.err != nil {
		return
	}
	if e.f != nil {
		e.f.Flush()
	}
}

// texts collects every string inside a JSON value: a tool result is a
// string or a list of content parts, and what a step wants may be in any.
func texts(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			b.WriteString(v)
			b.WriteByte('\n')
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return b.String()
}

// halves splits s in two, so every streamed value arrives in more than one
// delta, as a real model's does.
func halves(s string) []string {
	if len(s) < 2 {
		return []string{s}
	}
	r := []rune(s)
	return []string{string(r[:len(r)/2]), string(r[len(r)/2:])}
}

// State is what a Server saw, as StateHandler serves it: for a test whose
// mock runs in another process (cmd/agentmock, in a guest).
type State struct {
	Requests []Request `json:"requests"`
	// Errors are Err's errors, one string each.
	Errors []string `json:"errors"`
	// Steps is the highest step played per API (-1: none).
	Steps map[string]int `json:"steps"`
}

// State returns what the Server saw so far.
func (s *Server) State() State {
	st := State{Requests: s.Requests(), Steps: map[string]int{Anthropic: s.StepsPlayed(Anthropic), OpenAI: s.StepsPlayed(OpenAI)}}
	s.mu.Lock()
	for _, err := range s.failures {
		st.Errors = append(st.Errors, err.Error())
	}
	s.mu.Unlock()
	return st
}

// StateHandler serves State as JSON on GET, bodies left out unless the
// query has bodies=1. Serve it on a path of its own, apart from the APIs.
func (s *Server) StateHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		st := s.State()
		if r.URL.Query().Get("bodies") != "1" {
			for i := range st.Requests {
				st.Requests[i].Body = nil
			}
		}
		writeJSON(w, http.StatusOK, st)
	})
}
