package doctor

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// GKE Autopilot admits Pods through its own admission (GKE Warden and the
// Autopilot resource mutator), written down in GKE's documentation
// ("Resource requests in Autopilot", "Autopilot security capabilities").
// Its rules, as they touch a sandbox's Pod:
//
//   - requests below a compute class's minimum, or outside its CPU:memory
//     ratio, are raised (a mutation: the sandbox's limits change with them,
//     which Create reports and, for a raised limit, refuses); above the
//     maximum the Pod is refused;
//   - ephemeral storage is at most 10Gi on the general-purpose class;
//   - the only RuntimeClass is gvisor (GKE Sandbox);
//   - privileged containers, host namespaces, hostPath (but /var/log) and
//     added capabilities beyond its default set are refused — a sandbox
//     asks for none of them.
//
// A sandbox's Pod asks for requests equal to its limits, RuntimeDefault
// seccomp and no capabilities: the defaults comply. What a user's flags
// can break is checked here, by the general-purpose class's figures.
var autopilot = struct {
	group                string // an API group only Autopilot clusters serve
	minCPU, maxCPU       resource.Quantity
	minMemory, maxMemory resource.Quantity
	minRatio, maxRatio   float64 // GiB of memory per vCPU
	maxEphemeral         resource.Quantity
	runtimeClass         string
}{
	group:  "auto.gke.io",
	minCPU: resource.MustParse("50m"), maxCPU: resource.MustParse("30"),
	minMemory: resource.MustParse("52Mi"), maxMemory: resource.MustParse("110Gi"),
	minRatio: 1, maxRatio: 6.5,
	maxEphemeral: resource.MustParse("10Gi"),
	runtimeClass: "gvisor",
}

// autopilotProblems lists what Autopilot would refuse or change about a
// sandbox made from spec, each with Autopilot's rule.
func autopilotProblems(s *sandbox.Spec) []string {
	var out []string
	if s.CPU.Cmp(autopilot.maxCPU) > 0 || s.Memory.Cmp(autopilot.maxMemory) > 0 {
		out = append(out, fmt.Sprintf("refused: %s CPU / %s memory is above the general-purpose class's maximum (%s CPU, %s memory)",
			s.CPU.String(), s.Memory.String(), autopilot.maxCPU.String(), autopilot.maxMemory.String()))
	}
	if s.CPU.Cmp(autopilot.minCPU) < 0 || s.Memory.Cmp(autopilot.minMemory) < 0 {
		out = append(out, fmt.Sprintf("raised: requests below the minimum (%s CPU, %s memory) are raised, and the sandbox's limits with them",
			autopilot.minCPU.String(), autopilot.minMemory.String()))
	}
	if cpu := s.CPU.AsApproximateFloat64(); cpu > 0 {
		ratio := s.Memory.AsApproximateFloat64() / (1 << 30) / cpu
		if ratio < autopilot.minRatio || ratio > autopilot.maxRatio {
			out = append(out, fmt.Sprintf("raised: %.2g GiB of memory per CPU is outside Autopilot's ratio of %g to %g; it raises the smaller request, and the sandbox's limit with it",
				ratio, autopilot.minRatio, autopilot.maxRatio))
		}
	}
	if s.EphemeralStorage.Cmp(autopilot.maxEphemeral) > 0 {
		out = append(out, fmt.Sprintf("refused: %s of ephemeral storage is above the general-purpose class's maximum of %s",
			s.EphemeralStorage.String(), autopilot.maxEphemeral.String()))
	}
	if s.RuntimeClassName != "" && s.RuntimeClassName != autopilot.runtimeClass {
		out = append(out, fmt.Sprintf("refused: RuntimeClass %q; Autopilot offers only %q (GKE Sandbox)", s.RuntimeClassName, autopilot.runtimeClass))
	}
	return out
}

// checkAutopilot: on GKE Autopilot, a default sandbox is measured against
// the platform's rules. Elsewhere it says nothing.
func checkAutopilot(ctx context.Context, env *Env) []Result {
	groups, err := env.Clientset.Discovery().ServerGroups()
	if err != nil || ctx.Err() != nil {
		return nil
	}
	found := false
	for _, g := range groups.Groups {
		found = found || g.Name == autopilot.group
	}
	if !found {
		return nil
	}
	spec := defaultSandbox(env.Namespace)
	if problems := autopilotProblems(&spec); len(problems) > 0 {
		return []Result{warn("GKE Autopilot: a default sandbox ("+describeResources(spec)+") breaks its rules: "+strings.Join(problems, "; "),
			"create sandboxes within them (--cpu, --memory: 1 to 6.5 GiB per CPU; --ephemeral-storage at most 10Gi; --runtime-class gvisor or none)")}
	}
	return []Result{ok("GKE Autopilot: a default sandbox (%s) keeps its rules (1 to 6.5 GiB of memory per CPU, at most 10Gi of ephemeral storage, RuntimeClass gvisor or none); keep --cpu, --memory and --ephemeral-storage within them", describeResources(spec))}
}
