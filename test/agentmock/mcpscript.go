package agentmock

import "strconv"

// The tools `kubectl agentkernel mcp` offers, as Claude Code names an MCP
// server's tools: mcp__<server>__<tool>, the server being "agentkernel" in
// the README's `claude mcp add agentkernel -- kubectl agentkernel mcp`.
const mcpTool = "mcp__agentkernel__"

// MCPNote is what MCPScript writes into the sandbox and reads back, and
// MCPFinalText the last thing it says.
const (
	MCPNote      = "written through MCP by Claude Code"
	MCPFinalText = "Done: the sandbox held the note, and it is deleted."
)

// MCPScript is Claude Code driving the plugin's MCP server: it makes the
// sandbox called name, writes a file into the sandbox's directory dir (an
// absolute path: /workspace/…), runs a command there that reads the file,
// and deletes the sandbox. Each step wants what only the real tool on a
// real sandbox answers.
func MCPScript(name, dir string) Script {
	file := dir + "/hello.txt"
	return Script{
		{
			Text:  "I'll make a sandbox to work in.",
			Tool:  mcpTool + "create_sandbox",
			Input: jsonObject(map[string]any{"name": name}),
			Want:  []string{`"name":"` + name + `"`, `"usable":true`},
		},
		{
			Text:  "Now a file in it.",
			Tool:  mcpTool + "write_file",
			Input: jsonObject(map[string]any{"sandbox": name, "path": file, "content": MCPNote + "\n"}),
			Want:  []string{`"bytes":` + strconv.Itoa(len(MCPNote)+1)},
		},
		{
			Text:  "Let me read it back in the sandbox.",
			Tool:  mcpTool + "exec",
			Input: jsonObject(map[string]any{"sandbox": name, "shell": "cat " + file}),
			Want:  []string{MCPNote, `"exit_code":0`},
		},
		{
			Text:  "Done with it: deleting the sandbox.",
			Tool:  mcpTool + "delete_sandbox",
			Input: jsonObject(map[string]any{"sandbox": name}),
			Want:  []string{`"gone":true`},
		},
		{Text: MCPFinalText},
	}
}

// MCPTools are the tools MCPScript calls, for Claude Code's --allowedTools.
func MCPTools() []string {
	return []string{mcpTool + "create_sandbox", mcpTool + "write_file", mcpTool + "exec", mcpTool + "delete_sandbox"}
}
