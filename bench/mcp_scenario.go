package main

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpRows: sequential exec round trips through `kubectl agentkernel mcp`
// (tools/call exec `true`, each waiting for the last), as an agent makes
// them, against a kubectl exec process per command. The rows of execRows
// give the plugin's own exec, a process and in-process, in the same run.
func mcpRows() []*Scenario {
	return []*Scenario{{
		Name:    fmt.Sprintf("exec -- true ×%d through MCP, sequential", execBatch),
		Cluster: true,
		Setup: func(ctx context.Context, e *Env) error {
			if err := needWarm(ctx, e); err != nil {
				return err
			}
			_, err := mcpServer(ctx, e)
			return err
		},
		Ours: Side{
			Label: "tools/call exec through one kubectl agentkernel mcp server (the official Go SDK's client on its stdio)",
			Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
				b, err := mcpServer(ctx, e)
				if err != nil {
					return Sample{}, err
				}
				start := time.Now()
				for range execBatch {
					if err := b.execTrue(ctx); err != nil {
						return Sample{}, err
					}
				}
				return Sample{Wall: time.Since(start), Ops: execBatch}, nil
			},
		},
		Kubectl: kubectlExecBatch(),
		Note:    "what an agent's commands cost through the MCP server: no API request and, after the first, no new exec stream per command (a warm shell per sandbox); agentkernel publishes 7.7 exec/s for its MCP server",
	}}
}

// mcpServer is the one MCP server of the run, started on first use. It
// lives until the bench exits: its stdin closes then, and it deletes its
// sandbox (the bench namespace goes anyway).
var mcpServer = func() func(ctx context.Context, e *Env) (*mcpBench, error) {
	var once sync.Once
	var b *mcpBench
	var err error
	return func(ctx context.Context, e *Env) (*mcpBench, error) {
		once.Do(func() { b, err = startMCP(ctx, e.Plugin, e.Kubeconfig, e.Namespace) })
		return b, err
	}
}()

// mcpBench is a running MCP server with one sandbox, and a client on it.
type mcpBench struct {
	session *sdk.ClientSession
	sandbox string
}

// startMCP starts `plugin mcp` on ns, connects the official Go SDK's client
// over its stdin and stdout (as an agent would), and creates a sandbox.
func startMCP(ctx context.Context, plugin, kubeconfig, ns string) (*mcpBench, error) {
	cmd := exec.Command(plugin, "mcp", "--kubeconfig", kubeconfig, "-n", ns, "--network", "open")
	session, err := sdk.NewClient(&sdk.Implementation{Name: "agentkernel-bench"}, nil).Connect(ctx, &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return nil, fmt.Errorf("starting the MCP server: %w", err)
	}
	b := &mcpBench{session: session, sandbox: "mcp-bench"}
	if _, err := b.call(ctx, "create_sandbox", map[string]any{"name": b.sandbox}); err != nil {
		_ = session.Close()
		return nil, err
	}
	return b, nil
}

func (b *mcpBench) call(ctx context.Context, tool string, args map[string]any) (*sdk.CallToolResult, error) {
	res, err := b.session.CallTool(ctx, &sdk.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	if res.IsError {
		msg := ""
		if len(res.Content) > 0 {
			if t, ok := res.Content[0].(*sdk.TextContent); ok {
				msg = t.Text
			}
		}
		return nil, fmt.Errorf("%s failed: %s", tool, msg)
	}
	return res, nil
}

// execTrue is one round trip: tools/call exec `true`, checked for exit 0.
func (b *mcpBench) execTrue(ctx context.Context) error {
	res, err := b.call(ctx, "exec", map[string]any{"sandbox": b.sandbox, "command": []string{"true"}})
	if err != nil {
		return err
	}
	if out, ok := res.StructuredContent.(map[string]any); !ok || out["exit_code"] != 0.0 {
		return fmt.Errorf("exec true: %v", res.StructuredContent)
	}
	return nil
}
