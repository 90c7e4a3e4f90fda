package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// execBatch is how many commands the sequential exec row runs per round.
const execBatch = 20

// execRows: one command in a running sandbox.
func execRows() []*Scenario {
	return []*Scenario{
		{
			Name:    "exec -- true",
			Cluster: true,
			Setup:   needWarm,
			Ours:    cmdSide("kubectl agentkernel exec -- true", func(e *Env, _ int) []string { return e.ours("exec", e.warmName, "--", "true") }),
			Kubectl: cmdSide("kubectl exec -- true", func(e *Env, _ int) []string { return e.kubectl("exec", e.kpodName, "--", "true") }),
		},
		{
			Name:    fmt.Sprintf("exec -- true ×%d, sequential", execBatch),
			Cluster: true,
			Setup:   needWarm,
			Ours: Side{
				Label: "one process, the plugin's exec (pkg/sandbox.PodExec: WebSocket, SPDY fallback) per command",
				Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
					start := time.Now()
					for range execBatch {
						if err := execInProcess(ctx, e, sandbox.PodName(e.warmName), []string{"true"}); err != nil {
							return Sample{}, err
						}
					}
					return Sample{Wall: time.Since(start), Ops: execBatch}, nil
				},
			},
			Kubectl: kubectlExecBatch(),
			Note:    "commands per second from one long-lived process (a pool, an MCP server) against kubectl, which has no other way than a process per command",
		},
	}
}

// kubectlExecBatch is kubectl's side of the sequential exec rows: what a
// client without a long-lived process has, a kubectl exec per command.
func kubectlExecBatch() Side {
	return Side{
		Label: "a kubectl exec process per command",
		Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
			var argvs [][]string
			for range execBatch {
				argvs = append(argvs, e.kubectl("exec", e.kpodName, "--", "true"))
			}
			s, err := e.runAll(ctx, nil, argvs...)
			s.Ops = execBatch
			return s, err
		},
	}
}

// execInProcess runs command in the sandbox container of pod over one exec
// stream, through the plugin's own exec (pkg/sandbox.PodExec), and fails
// unless it exits 0.
func execInProcess(ctx context.Context, e *Env, pod string, command []string) error {
	pe := &sandbox.PodExec{Config: e.Config, Client: e.Clientset.CoreV1().RESTClient(), Namespace: e.Namespace, Pod: pod}
	var out bytes.Buffer
	if err := pe.Run(ctx, command, nil, &out, &out); err != nil {
		return fmt.Errorf("exec %v: %w: %s", command, err, out.String())
	}
	return nil
}
