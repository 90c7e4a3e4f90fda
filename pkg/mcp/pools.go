package mcp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

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
// its agent (sandbox.Within): a wider network or more destinations, other
// DNS, a writable root where the server's is read-only, more resources,
// another runtime class, node selector or service account, hosts beyond the
// server's --allow-host. The image is the pool's: an agent may choose any
// image for a sandbox of its own too.
func (s *Server) admitPool(spec *sandbox.Spec) error {
	errs := s.beyond(spec)
	if len(errs) == 0 {
		return nil
	}
	why := make([]string, len(errs))
	for i, e := range errs {
		why[i] = poolBeyond(e)
	}
	return fmt.Errorf("this server may not use its sandboxes: %s; create a sandbox without pool, or ask the server's user for a pool within its limits", strings.Join(why, "; "))
}

// beyond is how a sandbox made elsewhere (a pool's, a workspace's record)
// goes beyond the server's own (sandbox.Within).
func (s *Server) beyond(spec *sandbox.Spec) []sandbox.FieldError {
	base := s.o.Spec
	if base.Network == sandbox.NetworkEgress && base.DNS == nil && spec.DNS != nil {
		// The server's sandboxes query the cluster's DNS, as found when
		// each is made: find it now to compare.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		base.DNS = fence.DetectDNS(ctx, s.o.Clientset).Servers
		cancel()
	}
	return sandbox.Within(&base, spec)
}

// poolBeyond words a field of a pool's sandbox beyond the server's.
func poolBeyond(e sandbox.FieldError) string {
	switch e.Field {
	case "network":
		return fmt.Sprintf("its network %q is more open than this server's %q", e.Asked, e.Ceiling)
	case "allowHosts":
		return fmt.Sprintf("it may reach %s, which this server's --allow-host does not allow", e.Asked)
	case "allowEgress":
		return fmt.Sprintf("it may reach %s, beyond what this server's sandboxes may reach (%s)", e.Asked, e.Ceiling)
	case "dns":
		return fmt.Sprintf("it may send DNS to %s, beyond this server's DNS (%s)", e.Asked, e.Ceiling)
	case "readOnlyRoot":
		return "its root filesystem is writable, and this server's read-only"
	case "cpu", "memory":
		return fmt.Sprintf("its %s %s is more than this server's %s", e.Field, e.Asked, e.Ceiling)
	case "ephemeralStorage":
		return fmt.Sprintf("its ephemeral storage %s is more than this server's %s", e.Asked, e.Ceiling)
	case "runtimeClassName":
		return fmt.Sprintf("its runtime class is %s, not this server's %s", e.Asked, e.Ceiling)
	case "nodeSelector":
		return fmt.Sprintf("its node selector %s may place it on nodes this server's (%s) does not", e.Asked, e.Ceiling)
	case "serviceAccountName":
		return fmt.Sprintf("it runs as service account %s, not this server's %s", e.Asked, e.Ceiling)
	case "imagePullPolicy":
		return fmt.Sprintf("its image pull policy is %s, and this server's %s", e.Asked, e.Ceiling)
	}
	return e.Error()
}
