package agentmock

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Step is one turn of the model: some text, then a tool call, or, with no
// Tool, the conversation's final text.
type Step struct {
	// Text is said before the call; with no Tool, the final answer.
	Text string
	// Tool is the name of the tool the model calls, as the agent offers it.
	Tool string
	// Input is the call's input: a JSON object for a function tool, plain
	// text for a custom (free-form) tool.
	Input string
	// Want are substrings the tool's result must contain; the mock checks
	// them on the request that brings the result back.
	Want []string
}

// Script is a conversation: steps played in order, the last one a final
// text.
type Script []Step

// The repository a script works on: WriteRepo lays it out, and both scripts
// read greeting.txt, make it say NewGreeting, and run test.sh, which passes
// only then.
const (
	OldGreeting = "hello"
	NewGreeting = "hello, agent"
	// TestPassed is what test.sh prints when the edit was made.
	TestPassed = "test.sh: PASS"
	// FinalText is the last thing each script says.
	FinalText = "Done: greeting.txt now says hello, agent, and sh test.sh passes."
)

const testScript = `#!/bin/sh
# The repository's test: the greeting must greet the agent.
got=$(cat greeting.txt)
if [ "$got" = "` + NewGreeting + `" ]; then
	echo "` + TestPassed + `: greeting.txt says $got"
else
	echo "test.sh: FAIL: greeting.txt says $got"
	exit 1
fi
`

// WriteRepo writes the scripts' repository into dir: greeting.txt and
// test.sh.
func WriteRepo(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "greeting.txt"), []byte(OldGreeting+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "test.sh"), []byte(testScript), 0o755)
}

func jsonObject(v map[string]any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return string(b)
}

// ClaudeScript is Claude Code's conversation in the repository at dir (an
// absolute path: Claude Code's file tools take absolute paths): its own
// Read and Edit tools on greeting.txt, then its Bash tool runs sh test.sh
// in its working directory, which must be dir.
func ClaudeScript(dir string) Script {
	file := filepath.Join(dir, "greeting.txt")
	return Script{
		{
			Text:  "I'll read the greeting first.",
			Tool:  "Read",
			Input: jsonObject(map[string]any{"file_path": file}),
			Want:  []string{OldGreeting},
		},
		{
			Text:  "Now I'll make it greet the agent.",
			Tool:  "Edit",
			Input: jsonObject(map[string]any{"file_path": file, "old_string": OldGreeting, "new_string": NewGreeting, "replace_all": false}),
			Want:  []string{"greeting.txt"},
		},
		{
			Text:  "Let me run the tests.",
			Tool:  "Bash",
			Input: jsonObject(map[string]any{"command": "sh test.sh", "description": "Run the repository's tests"}),
			Want:  []string{TestPassed},
		},
		{Text: FinalText},
	}
}

// CodexScript is Codex's conversation in its working directory: cat
// greeting.txt through its shell tool, its own apply_patch tool to edit it,
// then sh test.sh.
func CodexScript() Script {
	return Script{
		{
			Text:  "I'll read the greeting first.",
			Tool:  "exec_command",
			Input: jsonObject(map[string]any{"cmd": "cat greeting.txt"}),
			Want:  []string{OldGreeting},
		},
		{
			Text:  "Now I'll make it greet the agent.",
			Tool:  "apply_patch",
			Input: "*** Begin Patch\n*** Update File: greeting.txt\n@@\n-" + OldGreeting + "\n+" + NewGreeting + "\n*** End Patch\n",
			Want:  []string{"greeting.txt"},
		},
		{
			Text:  "Let me run the tests.",
			Tool:  "exec_command",
			Input: jsonObject(map[string]any{"cmd": "sh test.sh"}),
			Want:  []string{TestPassed},
		},
		{Text: FinalText},
	}
}

// toolResult is what came back for one of the mock's calls.
type toolResult struct {
	text    string
	isError bool
}

// callID names step i's call, so the step a request has reached can be read
// from the results it carries, whatever else the agent sent in between.
func callID(prefix string, i int) string {
	return fmt.Sprintf("%s_agentmock_%02d", prefix, i)
}

// next finds the step to play: the first whose call has no result yet. It
// checks every result on the way against what its step wants, and that the
// step's tool is one the agent offered.
func (sc Script) next(prefix string, results map[string]toolResult, offered []string) (int, error) {
	if len(sc) == 0 {
		return -1, fmt.Errorf("no script for this API")
	}
	for i, st := range sc {
		if st.Tool == "" {
			return i, nil
		}
		res, ok := results[callID(prefix, i)]
		if !ok {
			if !slices.Contains(offered, st.Tool) {
				return i, fmt.Errorf("step %d calls tool %q, which the agent did not offer (it offered %s)", i, st.Tool, strings.Join(offered, ", "))
			}
			return i, nil
		}
		if res.isError {
			return i, fmt.Errorf("step %d: tool %s failed: %s", i, st.Tool, res.text)
		}
		for _, w := range st.Want {
			if !strings.Contains(res.text, w) {
				return i, fmt.Errorf("step %d: the result of tool %s lacks %q; it was:\n%s", i, st.Tool, w, res.text)
			}
		}
	}
	return len(sc), fmt.Errorf("the conversation is over (all %d steps played), yet the agent asked again", len(sc))
}

// CodexFlags are the flags that make the mock at baseURL (ending in /v1)
// Codex's model provider, its key read from $OPENAI_API_KEY: no config file
// needed (the same keys can go in $CODEX_HOME/config.toml). A provider of
// our own, since Codex 0.171.0 ignores $OPENAI_BASE_URL, and its built-in
// provider (with openai_base_url set) first tries the Responses API over a
// WebSocket, seven times in about seven seconds, before it falls back to
// HTTP. The model is one of Codex's own catalogue whose tools are the
// classic ones (exec_command, apply_patch as a custom tool): its default
// model gets a JavaScript "code mode" tool instead, which these scripts do
// not play, and a model it does not know gets no apply_patch. No retries:
// an error of the mock is final at once (with Codex's defaults, a refused
// request is sent six times in about seven seconds).
func CodexFlags(baseURL string) []string {
	return []string{
		"-c", "model=gpt-5.5",
		"-c", "model_provider=agentmock",
		"-c", `model_providers.agentmock={name="agentmock",base_url="` + baseURL + `",env_key="OPENAI_API_KEY",wire_api="responses",request_max_retries=0,stream_max_retries=0}`,
	}
}
