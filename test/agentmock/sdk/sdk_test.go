package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/agentkernel/kubectl-agentkernel/test/agentmock"
)

var script = agentmock.Script{
	{Text: "reading", Tool: "Read", Input: `{"file_path":"/repo/greeting.txt"}`, Want: []string{"hello"}},
	{Text: agentmock.FinalText},
}

var codexScript = agentmock.Script{
	{Tool: "exec_command", Input: `{"cmd":"cat greeting.txt"}`, Want: []string{"hello"}},
	{Text: "patching", Tool: "apply_patch", Input: "*** Begin Patch\n*** End Patch\n", Want: []string{"Success"}},
	{Text: agentmock.FinalText},
}

func anthropicClient(t *testing.T, opts agentmock.Options) (anthropic.Client, *agentmock.Server) {
	t.Helper()
	m := agentmock.New(opts)
	ts := httptest.NewServer(m)
	t.Cleanup(ts.Close)
	return anthropic.NewClient(aoption.WithBaseURL(ts.URL), aoption.WithAPIKey("fake"), aoption.WithMaxRetries(0)), m
}

func TestAnthropicStreaming(t *testing.T) {
	ctx := context.Background()
	client, m := anthropicClient(t, agentmock.Options{Claude: script})

	tools := []anthropic.ToolUnionParam{anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{Properties: map[string]any{"file_path": map[string]any{"type": "string"}}}, "Read")}
	messages := []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("greet the agent"))}
	turn := func() anthropic.Message {
		t.Helper()
		stream := client.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: "claude-test", MaxTokens: 1024, Messages: messages, Tools: tools})
		var msg anthropic.Message
		for stream.Next() {
			if err := msg.Accumulate(stream.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		return msg
	}

	msg := turn()
	if msg.StopReason != anthropic.StopReasonToolUse || len(msg.Content) != 2 {
		t.Fatalf("first turn: stop %q, %d blocks: %+v", msg.StopReason, len(msg.Content), msg.Content)
	}
	if msg.Content[0].Text != "reading" {
		t.Errorf("text %q, want %q", msg.Content[0].Text, "reading")
	}
	call := msg.Content[1]
	var input struct {
		FilePath string `json:"file_path"`
	}
	if err := json.Unmarshal(call.Input, &input); err != nil || call.Type != "tool_use" || call.Name != "Read" || input.FilePath != "/repo/greeting.txt" {
		t.Fatalf("tool_use %+v (%v), input %s", call, err, call.Input)
	}
	if msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens == 0 {
		t.Errorf("usage %+v", msg.Usage)
	}

	messages = append(messages, msg.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(call.ID, "1\thello", false)))
	msg = turn()
	if msg.StopReason != anthropic.StopReasonEndTurn || len(msg.Content) != 1 || msg.Content[0].Text != agentmock.FinalText {
		t.Fatalf("last turn: stop %q, content %+v", msg.StopReason, msg.Content)
	}
	if err := m.Err(); err != nil {
		t.Error(err)
	}
}

func TestAnthropicWhole(t *testing.T) {
	client, _ := anthropicClient(t, agentmock.Options{Claude: script})
	msg, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: "claude-test", MaxTokens: 1024,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		Tools:    []anthropic.ToolUnionParam{anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{}, "Read")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonToolUse || len(msg.Content) != 2 || msg.Content[1].Name != "Read" {
		t.Errorf("message %+v", msg)
	}
}

func TestAnthropicError(t *testing.T) {
	client, _ := anthropicClient(t, agentmock.Options{Claude: script, Fail: &agentmock.Failure{Status: 529, Message: "Overloaded"}})
	stream := client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{
		Model: "claude-test", MaxTokens: 1024,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	})
	for stream.Next() {
		t.Errorf("an event from a failing API: %+v", stream.Current())
	}
	var apiErr *anthropic.Error
	if err := stream.Err(); !errors.As(err, &apiErr) || apiErr.StatusCode != 529 || !strings.Contains(apiErr.RawJSON(), `"overloaded_error"`) {
		t.Errorf("error %v, want the API's 529 overloaded_error", err)
	}
}

func openAIClient(t *testing.T, opts agentmock.Options) (openai.Client, *agentmock.Server) {
	t.Helper()
	m := agentmock.New(opts)
	ts := httptest.NewServer(m)
	t.Cleanup(ts.Close)
	return openai.NewClient(ooption.WithBaseURL(ts.URL+"/v1/"), ooption.WithAPIKey("fake"), ooption.WithMaxRetries(0)), m
}

func TestOpenAIStreaming(t *testing.T) {
	ctx := context.Background()
	client, m := openAIClient(t, agentmock.Options{Codex: codexScript})
	tools := []responses.ToolUnionParam{
		{OfFunction: &responses.FunctionToolParam{Name: "exec_command", Parameters: map[string]any{"type": "object"}}},
		{OfCustom: &responses.CustomToolParam{Name: "apply_patch"}},
	}
	input := responses.ResponseInputParam{responses.ResponseInputItemParamOfMessage("greet the agent", responses.EasyInputMessageRoleUser)}
	turn := func() (text string, done []responses.ResponseOutputItemUnion, completed responses.Response) {
		t.Helper()
		stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "gpt-test", Input: responses.ResponseNewParamsInputUnion{OfInputItemList: input}, Tools: tools})
		for stream.Next() {
			ev := stream.Current()
			switch ev.Type {
			case "response.output_text.delta":
				text += ev.Delta
			case "response.output_item.done":
				done = append(done, ev.Item)
			case "response.completed":
				completed = ev.Response
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		return text, done, completed
	}

	_, done, completed := turn()
	if len(done) != 1 || done[0].Type != "function_call" {
		t.Fatalf("first turn's items: %+v", done)
	}
	fc := done[0].AsFunctionCall()
	if fc.Name != "exec_command" || fc.Arguments != `{"cmd":"cat greeting.txt"}` || completed.Status != "completed" || completed.Usage.TotalTokens == 0 {
		t.Fatalf("function call %+v, response %s %+v", fc, completed.Status, completed.Usage)
	}

	out := responses.ResponseInputItemParamOfFunctionCallOutput("Output:\nhello\n")
	out.OfFunctionCallOutput.CallID = openai.String(fc.CallID)
	input = append(input, out)
	text, done, _ := turn()
	if text != "patching" || len(done) != 2 || done[1].Type != "custom_tool_call" {
		t.Fatalf("second turn: text %q, items %+v", text, done)
	}
	ct := done[1].AsCustomToolCall()
	if ct.Name != "apply_patch" || ct.Input != codexScript[1].Input {
		t.Fatalf("custom tool call %+v", ct)
	}

	input = append(input, responses.ResponseInputItemParamOfCustomToolCallOutput(ct.CallID, "Success. Updated the following files:\nM greeting.txt"))
	text, _, completed = turn()
	if text != agentmock.FinalText || completed.OutputText() != agentmock.FinalText {
		t.Errorf("last turn: %q, output text %q", text, completed.OutputText())
	}
	if err := m.Err(); err != nil {
		t.Error(err)
	}
}

func TestOpenAIError(t *testing.T) {
	client, _ := openAIClient(t, agentmock.Options{Codex: codexScript, Fail: &agentmock.Failure{Status: http.StatusUnauthorized, Message: "Incorrect API key provided"}})
	_, err := client.Responses.New(context.Background(), responses.ResponseNewParams{Model: "gpt-test", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" || apiErr.Message != "Incorrect API key provided" {
		t.Errorf("error %v, want the API's 401 invalid_api_key", err)
	}
}
