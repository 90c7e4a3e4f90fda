package cmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// clientDryRunLookups bounds what a client-side dry run asks the cluster
// (who you are, where DNS is, which policies overlap): it must still
// print, quickly, when the cluster is slow or away.
const clientDryRunLookups = 5 * time.Second

// warnOtherPolicies says, on stderr, which NetworkPolicies besides the
// sandbox's own select it and allow it traffic. Policies add up: the
// sandbox may do whatever any of them allows, whatever its own fence says.
func (o *CreateOptions) warnOtherPolicies(ctx context.Context) {
	warnWideningPolicies(ctx, &o.clients, o.ErrOut, &o.spec)
}

// warnWideningPolicies is warnOtherPolicies for any command that makes a
// sandbox (run, pool members).
func warnWideningPolicies(ctx context.Context, c *clients, errOut io.Writer, spec *sandbox.Spec) {
	if spec.Network == sandbox.NetworkOpen {
		return // no fence of ours to widen
	}
	widening, err := sandbox.OtherPolicies(ctx, c.Clientset, spec.Namespace, spec.Pod().Labels)
	if err != nil {
		fmt.Fprintf(errOut, "Warning: could not check whether other NetworkPolicies widen the fence of sandbox/%s: %v\n", spec.Name, c.explain(err, spec.Namespace))
		return
	}
	for _, w := range widening {
		var what []string
		if w.Egress {
			what = append(what, "egress")
		}
		if w.Ingress {
			what = append(what, "ingress")
		}
		fmt.Fprintf(errOut, "Warning: NetworkPolicy %q also selects sandbox/%s and allows it %s; policies add up, so its rules widen the sandbox's fence (review it: kubectl get networkpolicy %s -n %s -o yaml)\n",
			w.Policy.Name, spec.Name, strings.Join(what, " and "), w.Policy.Name, spec.Namespace)
	}
}

// clientDryRun shows what create would send: the cluster is asked only
// what Create would ask it before creating anything.
func (o *CreateOptions) clientDryRun(ctx context.Context) error {
	lookups, cancel := context.WithTimeout(ctx, clientDryRunLookups)
	defer cancel()
	o.spec.FromCluster(lookups, o.Clientset)
	o.warnOtherPolicies(lookups)
	if err := o.prepareEgress(o.DryRun, o.ErrOut)(lookups, &o.spec); err != nil {
		return err
	}
	return o.printDryRun()
}
