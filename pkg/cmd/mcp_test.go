package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
)

func TestMCPFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--ttl", "0"}, "--ttl must be positive: every sandbox the MCP server makes has a TTL"},
		{[]string{"--max-output", "0"}, `--max-output "0" must be greater than zero`},
		{[]string{"--max-output", "1Gi"}, "--max-output must be between 1 and 16Mi"},
		{[]string{"--max-output", "lots"}, "--max-output"},
		{[]string{"--max-entries", "0"}, "--max-entries must be at least 1"},
		{[]string{"--exec-timeout", "0s"}, "--exec-timeout and --timeout must be positive"},
		{[]string{"--profile", "wide-open"}, `unknown profile "wide-open"`},
		{[]string{"--max-sandboxes", "0"}, "--max-sandboxes must be at least 1"},
		{[]string{"--root", "/nonexistent/agentkernel"}, "--root /nonexistent/agentkernel: no such file or directory"},
		{[]string{"--adopt", "Not_A_Name"}, "--adopt: invalid sandbox name"},
		{[]string{"--adopt-selector", "a in ("}, "invalid --adopt-selector"},
		{[]string{"extra"}, `unknown command "extra"`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			streams, _, out, _ := genericiooptions.NewTestIOStreams()
			cmd := NewCmdMCP(clitest.Factory(t), streams)
			cmd.SetArgs(c.args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.ExecuteContext(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout carries more than the protocol: %q", out)
			}
		})
	}
}

// The command speaks MCP on its stdin and stdout, nothing else goes to
// stdout, and a client closing stdin ends it cleanly.
func TestMCPServesOnStdio(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	errOut := &syncedBuffer{}
	streams := genericiooptions.IOStreams{In: inR, Out: outW, ErrOut: errOut}
	cmd := NewCmdMCP(clitest.Factory(t), streams)
	cmd.SetArgs([]string{"--ttl", "10m"})
	done := make(chan error, 1)
	go func() {
		done <- cmd.ExecuteContext(context.Background())
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	lines.Buffer(nil, 1<<20)
	send := func(msg string) {
		if _, err := io.WriteString(inW, msg+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	receive := func() map[string]any {
		if !lines.Scan() {
			t.Fatalf("no answer: %v; stderr:\n%s", lines.Err(), errOut)
		}
		var msg map[string]any
		if err := json.Unmarshal(lines.Bytes(), &msg); err != nil || msg["jsonrpc"] != "2.0" {
			t.Fatalf("stdout carries something that is not JSON-RPC: %q", lines.Text())
		}
		return msg
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`)
	init := receive()
	result, _ := init["result"].(map[string]any)
	info, _ := result["serverInfo"].(map[string]any)
	if info["name"] != "kubectl-agentkernel" || !strings.Contains(result["instructions"].(string), "at most 10m0s") {
		t.Fatalf("initialize: %v", init)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	tools := receive()
	b, _ := json.Marshal(tools)
	for _, name := range []string{"create_sandbox", "exec", "read_file", "delete_sandbox"} {
		if !strings.Contains(string(b), `"name":"`+name+`"`) {
			t.Errorf("tools/list lacks %s: %s", name, b)
		}
	}
	if strings.Contains(string(b), `"name":"copy_in"`) {
		t.Error("copy tools without --root")
	}
	inW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the server failed when the client left: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the server did not stop when stdin closed")
	}
	if lines.Scan() {
		t.Errorf("more on stdout: %q", lines.Text())
	}
	if !strings.Contains(errOut.String(), "the client disconnected") {
		t.Errorf("stderr does not log the end:\n%s", errOut)
	}
}

// syncedBuffer is stderr for a server whose goroutines log while the test reads.
type syncedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
