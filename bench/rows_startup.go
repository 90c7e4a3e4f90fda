package main

// startupRows: what a command costs before it does anything.
func startupRows() []*Scenario {
	return []*Scenario{
		{
			Name:    "start-up: version",
			Ours:    cmdSide("kubectl-agentkernel version", func(e *Env, _ int) []string { return []string{e.Plugin, "version"} }),
			Kubectl: cmdSide("kubectl version --client", func(e *Env, _ int) []string { return []string{e.Kubectl, "version", "--client"} }),
			Note:    "the plugin binary run directly, as kubectl's completion and scripts run it",
		},
		{
			Name: "start-up: kubectl agentkernel version",
			Ours: cmdSide("kubectl agentkernel version", func(e *Env, _ int) []string {
				return []string{e.Kubectl, "agentkernel", "version"}
			}),
			Kubectl: cmdSide("kubectl version --client", func(e *Env, _ int) []string { return []string{e.Kubectl, "version", "--client"} }),
			Note:    "through kubectl's plugin lookup: kubectl starts, finds kubectl-agentkernel on PATH and execs it, so this row is kubectl's start-up plus the plugin's",
		},
		{
			Name:    "start-up: --help",
			Ours:    cmdSide("kubectl-agentkernel --help", func(e *Env, _ int) []string { return []string{e.Plugin, "--help"} }),
			Kubectl: cmdSide("kubectl --help", func(e *Env, _ int) []string { return []string{e.Kubectl, "--help"} }),
		},
		{
			Name:    "list (one API call)",
			Cluster: true,
			Setup:   needWarm,
			Ours:    cmdSide("kubectl-agentkernel list", func(e *Env, _ int) []string { return e.ours("list") }),
			Kubectl: cmdSide("kubectl get pods -l agentkernel/managed-by=agentkernel", func(e *Env, _ int) []string {
				return e.kubectl("get", "pods", "-l", "agentkernel/managed-by=agentkernel")
			}),
		},
		{
			Name:    "completion of a sandbox name (TAB)",
			Cluster: true,
			Setup:   needWarm,
			Ours: cmdSide("kubectl_complete-agentkernel exec ''", func(e *Env, _ int) []string {
				return e.ours("__complete", "exec", "")
			}),
			Kubectl: cmdSide("kubectl __complete exec '' (pod names)", func(e *Env, _ int) []string {
				return e.kubectl("__complete", "exec", "")
			}),
			Note: "what a TAB costs; kubectl runs the plugin's completion helper, which now calls the plugin directly",
		},
	}
}
