package main

// The warm agent row (issue #24): run --pool --agent from a pool whose
// members ran the preset's install step while they warmed up, against the
// cold run --agent it saves, which creates the sandbox and then installs
// over exec. The preset's install step is a stand-in that takes a known
// time (warmAgentInstall): on the simulated node only execs run, so the
// members' own install (their PID 1) never runs and the warm side shows
// what a claim costs once a member is ready; the cold side pays the
// install's known time in full, as on any node.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// warmAgentInstall stands in for an agent's install step (npm install of a
// 200 MB CLI takes tens of seconds on a real node).
const warmAgentInstall = "sleep 2"

func warmAgentRows() []*Scenario {
	var presets string
	args := func(e *Env, round int, extra ...string) []string {
		a := append([]string{fmt.Sprintf("wa%d", round), "--agent", "benchtool", "--agents-file", presets, "-q"}, extra...)
		return e.ours("run", append(a, "--", "true")...)
	}
	return []*Scenario{{
		Name:    "run --agent → agent ran (install during warm-up vs after create)",
		Cluster: true,
		Setup: func(ctx context.Context, e *Env) error {
			if err := needCluster(ctx, e); err != nil {
				return err
			}
			presets = filepath.Join(e.Tmp, "warm-agents.yaml")
			if err := os.WriteFile(presets, []byte(`agents:
  benchtool:
    image: docker.io/library/busybox:1.37.0
    install: `+warmAgentInstall+`
    command: ["true"]
    profile: permissive
    cpu: "`+e.ScaleCPU+`"
    memory: "`+e.ScaleMem+`"
`), 0o644); err != nil {
				return err
			}
			_, err := e.run(ctx, nil, e.ours("pool", "create", "bench-agent", "--size", "1", "--agent", "benchtool", "--agents-file", presets)...)
			return err
		},
		Ours: Side{
			Label:   "kubectl agentkernel run --pool --agent (a member that installed while warm)",
			Prepare: func(ctx context.Context, e *Env, round int) error { return readyMembers(ctx, e, "bench-agent", 1) },
			Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
				return e.run(ctx, nil, args(e, round, "--pool", "bench-agent")...)
			},
			Cleanup: func(ctx context.Context, e *Env, round int) error { return deleteSandboxes(ctx, e) },
		},
		Kubectl: Side{
			Label: "kubectl agentkernel run --agent (cold: create, then the install step over exec)",
			Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
				return e.run(ctx, nil, args(e, round+1000)...)
			},
			Cleanup: func(ctx context.Context, e *Env, round int) error { return deleteSandboxes(ctx, e) },
		},
		Done: func(ctx context.Context, e *Env) error {
			_, err := e.run(ctx, nil, e.ours("pool", "delete", "bench-agent")...)
			return err
		},
		Note: "claim → the agent's command has run and the sandbox is deleted; the install step is a stand-in of a known " + warmAgentInstall[len("sleep "):] + " s, which the warm side's member ran before the clock started (on a real node, as its PID 1 started) and the cold side runs over exec after its create; both sides are the plugin",
	}}
}
