package main

// The MCP row: sequential exec round trips through `kubectl agentkernel
// mcp` (tools/call exec `true`, each waiting for the last), beside the
// plugin's own exec and kubectl exec (a process per command) in the same
// run. It needs only a plugin binary, a kubeconfig and a namespace, so it
// plugs into any harness: see mcpExecRates for the hook of this file's
// main.go.

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

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

// Close ends the session: the server deletes its sandbox and exits.
func (b *mcpBench) Close() error { return b.session.Close() }

// mcpExecRates measures batches of n sequential execs three ways, the
// batches interleaved so that drift on a busy machine hits all alike, and
// prints commands per second (median batch) for each. ours and kubectl run
// one exec of `true` as a process of the plugin and of kubectl.
func mcpExecRates(ctx context.Context, b *mcpBench, n, rounds int, ours, kubectl func() error) error {
	sides := []struct {
		label string
		run   func() error
		walls []time.Duration
	}{
		{label: "tools/call exec through kubectl agentkernel mcp (one server, one client)", run: func() error { return b.execTrue(ctx) }},
		{label: "kubectl agentkernel exec (a process per command)", run: ours},
		{label: "kubectl exec (a process per command)", run: kubectl},
	}
	for round := 0; round <= rounds; round++ { // round 0 warms up
		for i := range sides {
			s := &sides[(i+round)%len(sides)]
			start := time.Now()
			for range n {
				if err := s.run(); err != nil {
					return fmt.Errorf("%s: %w", s.label, err)
				}
			}
			if round > 0 {
				s.walls = append(s.walls, time.Since(start))
			}
		}
	}
	fmt.Printf("\nsequential exec `true`, %d per batch, median of %d batches:\n", n, rounds)
	for _, s := range sides {
		m := median(s.walls)
		fmt.Printf("  %7.1f exec/s  %6.1f ms each  %s\n", float64(n)/m.Seconds(), float64(m.Microseconds())/1000/float64(n), s.label)
	}
	return nil
}
