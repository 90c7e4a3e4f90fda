package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"

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
				Label: "one process, client-go exec (WebSocket, SPDY fallback) per command",
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
			Kubectl: Side{
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
			},
			Note: "commands per second from one long-lived process (a pool, an MCP server) against kubectl, which has no other way than a process per command",
		},
	}
}

// execInProcess runs command in the sandbox container of pod over one exec
// stream, the way kubectl's exec does it, and fails unless it exits 0.
func execInProcess(ctx context.Context, e *Env, pod string, command []string) error {
	req := e.Clientset.CoreV1().RESTClient().Post().Resource("pods").Namespace(e.Namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: sandbox.ContainerName, Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(e.Config, "GET", req.URL().String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(e.Config, "POST", req.URL())
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &out}); err != nil {
		return fmt.Errorf("exec %v: %w: %s", command, err, out.String())
	}
	return nil
}
