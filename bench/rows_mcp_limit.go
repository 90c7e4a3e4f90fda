package main

// The MCP server at its sandbox limit (issue #27, -thousand only): one
// `kubectl agentkernel mcp --max-sandboxes K` that holds K sandboxes,
// beside the thousand, and an agent that works in each of them in turn:
// one exec round trip per sandbox (K warm shells), against a kubectl exec
// process per command into the same pods. Each round also lists the
// server's sandboxes and checks that one more create is refused, by name,
// at once.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/client-go/util/workqueue"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// mcpLimit is the server's --max-sandboxes in the row.
const mcpLimit = 50

func mcpLimitRows(n int) []*Scenario {
	if n == 0 {
		return nil
	}
	var srv *mcpAtLimit
	return []*Scenario{{
		Name: fmt.Sprintf("MCP server at its limit of %d sandboxes, beside %d", mcpLimit, n), Cluster: true, MaxRounds: 3,
		Setup: func(ctx context.Context, e *Env) error {
			if err := needCluster(ctx, e); err != nil {
				return err
			}
			if err := ensureSandboxes(ctx, e, n); err != nil {
				return err
			}
			var err error
			srv, err = startMCPAtLimit(ctx, e, mcpLimit)
			return err
		},
		Ours: Side{
			Label: fmt.Sprintf("tools/call exec `true` in each of the server's %d sandboxes in turn (+ list_sandboxes, + a create refused at the limit)", mcpLimit),
			Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
				start := time.Now()
				for _, name := range srv.sandboxes {
					if err := srv.execTrue(ctx, name); err != nil {
						return Sample{}, err
					}
				}
				if err := srv.atLimit(ctx, round); err != nil {
					return Sample{}, err
				}
				return Sample{Wall: time.Since(start), Ops: len(srv.sandboxes), PeakRSS: srv.peakRSS()}, nil
			},
		},
		Kubectl: Side{
			Label: "a kubectl exec process per command, into the same sandboxes' pods",
			Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
				var argvs [][]string
				for _, pod := range srv.pods {
					argvs = append(argvs, e.kubectl("exec", pod, "-c", "sandbox", "--", "true"))
				}
				s, err := e.runAll(ctx, nil, argvs...)
				s.Ops = len(argvs)
				return s, err
			},
		},
		Done: func(ctx context.Context, e *Env) error { return srv.close() },
		Note: fmt.Sprintf("one MCP server holding its --max-sandboxes %d; our peak RSS is the server's (VmHWM) after the round, kubectl's its largest exec process's", mcpLimit),
	}}
}

// mcpAtLimit is an MCP server that holds its limit of sandboxes.
type mcpAtLimit struct {
	mcpBench
	cmd       *exec.Cmd
	sandboxes []string
	pods      []string // each sandbox's Pod, for kubectl exec
}

// startMCPAtLimit starts `plugin mcp --max-sandboxes limit` and fills it
// (untimed), ten creates at a time.
func startMCPAtLimit(ctx context.Context, e *Env, limit int) (*mcpAtLimit, error) {
	cmd := exec.Command(e.Plugin, "mcp", "--kubeconfig", e.Kubeconfig, "-n", e.Namespace, "--network", "open",
		"--max-sandboxes", strconv.Itoa(limit), "--cpu", e.ScaleCPU, "--memory", e.ScaleMem)
	session, err := sdk.NewClient(&sdk.Implementation{Name: "agentkernel-bench"}, nil).Connect(ctx, &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return nil, fmt.Errorf("starting the MCP server: %w", err)
	}
	s := &mcpAtLimit{mcpBench: mcpBench{session: session}, cmd: cmd}
	stamp := time.Now().UnixNano() % 1e6
	for i := range limit {
		s.sandboxes = append(s.sandboxes, fmt.Sprintf("ml%d-%d", stamp, i))
	}
	start := time.Now()
	errs := make([]error, limit)
	workqueue.ParallelizeUntil(ctx, 10, limit, func(i int) {
		_, errs[i] = s.call(ctx, "create_sandbox", map[string]any{"name": s.sandboxes[i]})
	})
	for _, err := range errs {
		if err != nil {
			_ = s.close()
			return nil, fmt.Errorf("filling the MCP server to its limit: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "bench: the MCP server made its %d sandboxes in %s (untimed)\n", limit, time.Since(start).Round(time.Millisecond))
	for _, name := range s.sandboxes {
		pod, err := sandbox.Find(ctx, e.Clientset, e.Namespace, name)
		if err != nil {
			_ = s.close()
			return nil, fmt.Errorf("the MCP server's sandbox %s: %w", name, err)
		}
		s.pods = append(s.pods, pod.Name)
	}
	return s, nil
}

func (s *mcpAtLimit) execTrue(ctx context.Context, name string) error {
	res, err := s.call(ctx, "exec", map[string]any{"sandbox": name, "command": []string{"true"}})
	if err != nil {
		return err
	}
	if out, ok := res.StructuredContent.(map[string]any); !ok || out["exit_code"] != 0.0 {
		return fmt.Errorf("exec true in %s: %v", name, res.StructuredContent)
	}
	return nil
}

// atLimit lists the server's sandboxes (all of them) and checks that one
// more is refused, saying why.
func (s *mcpAtLimit) atLimit(ctx context.Context, round int) error {
	res, err := s.call(ctx, "list_sandboxes", map[string]any{})
	if err != nil {
		return err
	}
	out, _ := res.StructuredContent.(map[string]any)
	if got, _ := out["sandboxes"].([]any); len(got) != len(s.sandboxes) {
		return fmt.Errorf("list_sandboxes at the limit: %d sandboxes, want %d", len(got), len(s.sandboxes))
	}
	_, err = s.call(ctx, "create_sandbox", map[string]any{"name": fmt.Sprintf("ml-over-%d", round)})
	if err == nil || !strings.Contains(err.Error(), "--max-sandboxes") {
		return fmt.Errorf("a create past the server's limit: want a refusal naming --max-sandboxes, got %v", err)
	}
	return nil
}

// peakRSS is the server's peak resident set (VmHWM), 0 if unreadable.
func (s *mcpAtLimit) peakRSS() int64 {
	if s.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var n int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), &n); err == nil {
				return n * 1024
			}
		}
	}
	return 0
}

// close ends the server: its stdin closes and it deletes its sandboxes.
func (s *mcpAtLimit) close() error {
	if s == nil || s.session == nil {
		return nil
	}
	err := s.session.Close()
	s.session = nil
	return err
}
