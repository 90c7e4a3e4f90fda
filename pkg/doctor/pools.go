package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
)

// checkPools reports each warm pool of the namespace: its ready members
// against its size, and why members are not starting. It only looks: pool
// list and every claim top a pool up, doctor does not change the cluster.
func checkPools(ctx context.Context, env *Env) []Result {
	pools, bad, err := pool.ListPools(ctx, env.Clientset, env.Namespace)
	if err != nil {
		return []Result{warn("cannot list pools (PodTemplates): "+err.Error(), env.rbacHint())}
	}
	var out []Result
	for _, e := range bad {
		out = append(out, fail(e.Error(), "delete it with kubectl agentkernel pool delete, or fix the annotation the error names"))
	}
	if len(pools) == 0 {
		if len(out) == 0 {
			out = append(out, ok("no warm pool in namespace %q (kubectl agentkernel pool create NAME --size N makes one)", env.Namespace))
		}
		return out
	}
	statuses, err := pool.PoolStatuses(ctx, env.Clientset, pools)
	if err != nil {
		return append(out, warn("cannot count the pools' members: "+err.Error(), env.rbacHint()))
	}
	for _, st := range statuses {
		p := st.Pool
		found := fmt.Sprintf("pool %q: %d of %d ready, %d starting, %d claimed", p.Name, st.Ready, p.Size, st.Starting, st.Claimed)
		switch {
		case len(st.Problems) > 0:
			out = append(out, fail(found+"; members stuck: "+strings.Join(st.Problems, "; "),
				fmt.Sprintf("fix what the members wait on (image, quota, scheduling), then: kubectl agentkernel pool list -n %s (replaces members that ended)", env.Namespace)))
		case st.Ready < p.Size:
			out = append(out, warn(found+"; claims fall back to a cold create until it refills",
				fmt.Sprintf("wait, or top it up: kubectl agentkernel pool list -n %s", env.Namespace)))
		default:
			out = append(out, ok("%s", found))
		}
	}
	return out
}
