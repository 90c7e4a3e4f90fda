package mcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// WarmPools is the PoolClaimer of the namespace's warm pools (kubectl
// agentkernel pool create): create_sandbox with a pool claims through
// pool.Acquire, exactly as `create --pool` does. The claim brings the
// server's own environment, secrets, labels and idle timeout, and the
// agent's TTL; the pool fixes the rest. A pool whose sandboxes would be
// more open or bigger than the server allows (its --profile, --network,
// --read-only, resources, runtime class, --allow-host) is refused before
// any member is taken: whoever may create pools in the namespace does not
// widen what the server's agent can reach.
//
// Each claim's replacement in its pool is made while the agent already
// uses its sandbox; the server waits for those before it stops.
func WarmPools() PoolClaimer { return &warmPools{} }

type warmPools struct {
	s       *Server // set by New
	refills sync.WaitGroup
}

// bind gives the claimer the server whose options it claims with.
func (w *warmPools) bind(s *Server) { w.s = s }

func (w *warmPools) Claim(ctx context.Context, poolName, name string, ttl time.Duration) (*corev1.Pod, error) {
	s := w.s
	if s == nil {
		return nil, errors.New("WarmPools claims only for the server it was given to (mcp.Options.Pools)")
	}
	o := &s.o
	claim := o.Spec
	claim.Name, claim.TTL = name, ttl
	a, err := pool.Acquire(ctx, o.Clientset, &claim, pool.AcquireOptions{
		Pool: poolName,
		Exec: func(pod *corev1.Pod) *sandbox.PodExec {
			return sandbox.NewPodExec(o.Config, o.RESTClient, o.Executor, pod)
		},
		RefillInBackground: true,
		Admit:              s.admitPool,
		CreateOptions: sandbox.CreateOptions{
			SecretValues: o.SecretValues,
			Wait:         true,
			Timeout:      o.StartTimeout,
		},
	})
	if err != nil {
		return nil, err
	}
	w.refills.Add(1)
	go func() {
		defer w.refills.Done()
		if err := a.WaitRefill(); err != nil {
			s.log.Warn("refilling the pool", "pool", poolName, "error", err)
		}
	}()
	if a.Warm {
		s.log.Info("claimed warm from pool", "sandbox", name, "pool", poolName, "pod", a.Pod.Name)
	} else {
		s.log.Info("created cold from the pool's definition", "sandbox", name, "pool", poolName, "why", a.Why)
	}
	return a.Pod, nil
}

// waitRefills waits for the replacements of the claims made so far.
func (w *warmPools) waitRefills() { w.refills.Wait() }

// admitPool refuses a pool's sandbox that the server would not create for
// its agent: a wider network, a writable root where the server's is
// read-only, more resources, another runtime class or service account,
// hosts beyond the server's --allow-host. The image is the pool's: an
// agent may choose any image for a sandbox of its own too.
func (s *Server) admitPool(spec *sandbox.Spec) error {
	base := &s.o.Spec
	var why []string
	if slices.Index(sandbox.Networks, spec.Network) > slices.Index(sandbox.Networks, base.Network) {
		why = append(why, fmt.Sprintf("its network %q is more open than this server's %q", spec.Network, base.Network))
	}
	if base.Network != sandbox.NetworkOpen {
		if extra := missingFrom(spec.AllowHosts, base.AllowHosts); len(extra) > 0 {
			why = append(why, fmt.Sprintf("it may reach %s, which this server's --allow-host does not allow", strings.Join(extra, ", ")))
		}
	}
	if spec.Network == sandbox.NetworkEgress && base.Network == sandbox.NetworkEgress && len(base.AllowEgress) > 0 {
		if len(spec.AllowEgress) == 0 {
			why = append(why, "it may reach the whole internet, and this server only its --allow-egress destinations")
		} else if extra := missingFrom(destinations(spec.AllowEgress), destinations(base.AllowEgress)); len(extra) > 0 {
			why = append(why, fmt.Sprintf("it may reach %s, beyond this server's --allow-egress", strings.Join(extra, ", ")))
		}
	}
	if base.ReadOnlyRoot && !spec.ReadOnlyRoot {
		why = append(why, "its root filesystem is writable, and this server's read-only")
	}
	for _, r := range []struct {
		field     string
		got, most resource.Quantity
	}{
		{"cpu", spec.CPU, base.CPU},
		{"memory", spec.Memory, base.Memory},
		{"ephemeral storage", spec.EphemeralStorage, base.EphemeralStorage},
	} {
		if r.got.Cmp(r.most) > 0 {
			why = append(why, fmt.Sprintf("its %s %s is more than this server's %s", r.field, r.got.String(), r.most.String()))
		}
	}
	if base.RuntimeClassName != "" && spec.RuntimeClassName != base.RuntimeClassName {
		why = append(why, fmt.Sprintf("its runtime class is %s, not this server's %q", show(spec.RuntimeClassName), base.RuntimeClassName))
	}
	if spec.ServiceAccountName != "" && spec.ServiceAccountName != base.ServiceAccountName {
		why = append(why, fmt.Sprintf("it runs as service account %q, not this server's %s", spec.ServiceAccountName, show(base.ServiceAccountName)))
	}
	if len(why) > 0 {
		return fmt.Errorf("this server may not use its sandboxes: %s; create a sandbox without pool, or ask the server's user for a pool within its limits", strings.Join(why, "; "))
	}
	return nil
}

func show(s string) string {
	if s == "" {
		return "none"
	}
	return fmt.Sprintf("%q", s)
}

// missingFrom returns the items of got that allowed lacks.
func missingFrom(got, allowed []string) []string {
	var out []string
	for _, g := range got {
		if !slices.Contains(allowed, g) {
			out = append(out, g)
		}
	}
	return out
}

func destinations(ds []fence.Destination) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%+v", d)
	}
	return out
}
