package main

// The agent-sandbox rows (issue #27): kubernetes-sigs/agent-sandbox, the
// compass of this field, measured beside us in the same run on the same
// control plane (bench/peer.go). In these rows the second side — the
// table's "kubectl" column — is agent-sandbox: its controller (a host
// process with its own ServiceAccount's RBAC) does the work its CRs ask
// for. Both sides run the same hardened Pod with the network open, and
// kwok's stages make every Pod Ready alike: what differs is the path from
// request to a Ready Pod. Pools are made and refilled before each round,
// untimed, so every timed claim finds a full pool.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/peer/agentsandbox"
)

// peerPoolSize is the pool of the sequential and refill rows.
const peerPoolSize = 10

var peerNote = "agent-sandbox " + agentsandbox.Version + " from the Go module proxy, its controller on the host with the RBAC its install grants; kwok makes both sides' Pods Ready alike"

func peerRows() []*Scenario {
	rows := []*Scenario{
		{
			Name:    "agent-sandbox: cold sandbox → Ready, in-process",
			Cluster: true,
			Setup:   needPeer,
			Ours: Side{
				Label: "pkg/sandbox.Create (network open), waiting until Running",
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					spec := sandbox.NewSpec(fmt.Sprintf("pc%d", round), e.Namespace)
					spec.Network = sandbox.NetworkOpen
					start := time.Now()
					_, err := sandbox.Create(ctx, e.Clientset, &spec, sandbox.CreateOptions{Wait: true, Timeout: e.CreateTimeout})
					return Sample{Wall: time.Since(start)}, err
				},
				Cleanup: func(ctx context.Context, e *Env, _ int) error { return deleteSandboxes(ctx, e) },
			},
			Kubectl: Side{
				Label: "agent-sandbox: create a Sandbox, watch until its Ready condition",
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					pt, err := e.peerPodTemplate("", "")
					if err != nil {
						return Sample{}, err
					}
					name := fmt.Sprintf("as%d", round)
					start := time.Now()
					if _, err := e.peer(peerSandboxes).Create(ctx, peerSandbox(name, pt), metav1.CreateOptions{}); err != nil {
						return Sample{}, err
					}
					_, err = waitPeerReady(ctx, e.peer(peerSandboxes), metav1.ListOptions{FieldSelector: "metadata.name=" + name}, 1, e.CreateTimeout)
					return Sample{Wall: time.Since(start)}, err
				},
				Cleanup: func(ctx context.Context, e *Env, _ int) error {
					return deletePeer(ctx, e, peerSandboxes, roundLabel+"=as")
				},
			},
			Note: "cold, one client in this process on each side; " + peerNote,
		},
		{
			Name:    "agent-sandbox: cold sandbox → Ready, CLI",
			Cluster: true,
			Setup:   needPeer,
			Ours: Side{
				Label: "kubectl agentkernel create --network open",
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.run(ctx, nil, e.ours("create", fmt.Sprintf("pk%d", round), "--network", "open")...)
				},
				Cleanup: func(ctx context.Context, e *Env, _ int) error { return deleteSandboxes(ctx, e) },
			},
			Kubectl: Side{
				Label: "agent-sandbox has no CLI: kubectl create -f sandbox.yaml + kubectl wait --for=condition=Ready sandbox/NAME",
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					pt, err := e.peerPodTemplate("", "")
					if err != nil {
						return Sample{}, err
					}
					name := fmt.Sprintf("ak%d", round)
					return e.kubectlCreateWait(ctx, peerSandbox(name, pt), "sandbox/"+name)
				},
				Cleanup: func(ctx context.Context, e *Env, _ int) error {
					return deletePeer(ctx, e, peerSandboxes, roundLabel+"=as")
				},
			},
			Note: "cold, each side's command line; " + peerNote,
		},
		{
			Name:    fmt.Sprintf("agent-sandbox: warm claim → Ready, pool of %d, %d sequential, in-process", peerPoolSize, peerPoolSize),
			Cluster: true,
			Setup:   bothPools("seq", peerPoolSize),
			Ours: Side{
				Label:   fmt.Sprintf("pkg/pool.Acquire ×%d, each waiting for the last (replacements made in the background)", peerPoolSize),
				Prepare: func(ctx context.Context, e *Env, _ int) error { return readyMembers(ctx, e, "seq", peerPoolSize) },
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					var got []*pool.Acquired
					start := time.Now()
					for i := range peerPoolSize {
						a, err := acquireWarm(ctx, e, "seq", fmt.Sprintf("ps%d-%d", round, i))
						if err != nil {
							return Sample{}, err
						}
						got = append(got, a)
					}
					s := Sample{Wall: time.Since(start), Ops: peerPoolSize}
					return s, waitRefills(got)
				},
				Cleanup: func(ctx context.Context, e *Env, _ int) error { return deleteSandboxes(ctx, e) },
			},
			Kubectl: Side{
				Label:   fmt.Sprintf("agent-sandbox: create a SandboxClaim and watch until Ready, ×%d", peerPoolSize),
				Prepare: func(ctx context.Context, e *Env, _ int) error { return waitPeerPool(ctx, e, "seq", peerPoolSize) },
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					start := time.Now()
					for i := range peerPoolSize {
						if err := claimPeer(ctx, e, "seq", fmt.Sprintf("as%d-%d", round, i), round); err != nil {
							return Sample{}, err
						}
					}
					return Sample{Wall: time.Since(start), Ops: peerPoolSize}, nil
				},
				Cleanup: func(ctx context.Context, e *Env, _ int) error {
					return deletePeer(ctx, e, peerClaims, roundLabel+"=as-seq")
				},
			},
			Done: dropBothPools("seq"),
			Note: fmt.Sprintf("time per claim; a full pool of %d before each round, %d claims one after the other; ", peerPoolSize, peerPoolSize) + peerNote,
		},
		{
			Name:    "agent-sandbox: warm claim → Ready, CLI",
			Cluster: true,
			Setup:   bothPools("cli", peerPoolSize),
			Ours: Side{
				Label:   "kubectl agentkernel create --pool (claims, makes the replacement, exits)",
				Prepare: func(ctx context.Context, e *Env, _ int) error { return readyMembers(ctx, e, "cli", peerPoolSize) },
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.run(ctx, nil, e.ours("create", fmt.Sprintf("pl%d", round), "--pool", "cli")...)
				},
				Cleanup: func(ctx context.Context, e *Env, _ int) error { return deleteSandboxes(ctx, e) },
			},
			Kubectl: Side{
				Label:   "agent-sandbox has no CLI: kubectl create -f claim.yaml + kubectl wait --for=condition=Ready sandboxclaim/NAME",
				Prepare: func(ctx context.Context, e *Env, _ int) error { return waitPeerPool(ctx, e, "cli", peerPoolSize) },
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					name := fmt.Sprintf("al%d", round)
					return e.kubectlCreateWait(ctx, peerClaim(name, "cli", round), "sandboxclaim/"+name)
				},
				Cleanup: func(ctx context.Context, e *Env, _ int) error {
					return deletePeer(ctx, e, peerClaims, roundLabel+"=as-cli")
				},
			},
			Done: dropBothPools("cli"),
			Note: fmt.Sprintf("one claim from a full pool of %d, each side's command line; ", peerPoolSize) + peerNote,
		},
	}
	for _, n := range []int{20, 100} {
		rows = append(rows, peerBurstRow(n))
	}
	return append(rows, peerRefillRow())
}

// peerBurstRow: n claims at once from a pool of n.
func peerBurstRow(n int) *Scenario {
	name := fmt.Sprintf("burst%d", n)
	return &Scenario{
		Name:      fmt.Sprintf("agent-sandbox: %d concurrent claims → Ready, pool of %d", n, n),
		Cluster:   true,
		MaxRounds: 3,
		Setup:     bothPools(name, n),
		Ours: Side{
			Label:   fmt.Sprintf("pkg/pool.Acquire from %d clientsets at once, one claim each", n),
			Prepare: func(ctx context.Context, e *Env, _ int) error { return readyMembers(ctx, e, name, n) },
			Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
				return claimBurst(ctx, e, name, round, n, n, false)
			},
			Cleanup: func(ctx context.Context, e *Env, _ int) error { return deleteSandboxes(ctx, e) },
		},
		Kubectl: Side{
			Label:   fmt.Sprintf("agent-sandbox: %d SandboxClaims created at once from this process, watched until all are Ready", n),
			Prepare: func(ctx context.Context, e *Env, _ int) error { return waitPeerPool(ctx, e, name, n) },
			Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
				selector := fmt.Sprintf("%s=as-%s,%s=%d", roundLabel, name, peerRoundLabel, round)
				start := time.Now()
				var wg sync.WaitGroup
				errs := make([]error, n)
				for i := range n {
					wg.Go(func() {
						_, errs[i] = e.peer(peerClaims).Create(ctx, peerClaim(fmt.Sprintf("ab%d-%d", round, i), name, round), metav1.CreateOptions{})
					})
				}
				wg.Wait()
				ready, err := waitPeerReady(ctx, e.peer(peerClaims), metav1.ListOptions{LabelSelector: selector}, n, e.CreateTimeout)
				s := Sample{Wall: time.Since(start), Ops: n, Done: ready, Of: n}
				fmt.Fprintf(os.Stderr, "bench: agent-sandbox, %d claims at once: %.0f claims/s; %d Ready\n", n, float64(n)/s.Wall.Seconds(), ready)
				return s, firstOf(errors.Join(errs...), err)
			},
			Cleanup: func(ctx context.Context, e *Env, _ int) error {
				return deletePeer(ctx, e, peerClaims, roundLabel+"=as-"+name)
			},
		},
		Done: dropBothPools(name),
		Note: fmt.Sprintf("a full pool of %d before each round; the clock stops when the last claim is Ready (ours: handed over Running); ", n) + peerNote,
	}
}

// peerRefillRow: after one claim, how long until the pool is full and
// Ready again.
func peerRefillRow() *Scenario {
	const name = "refill"
	return &Scenario{
		Name:    fmt.Sprintf("agent-sandbox: refill → pool of %d Ready again after a claim", peerPoolSize),
		Cluster: true,
		Setup:   bothPools(name, peerPoolSize),
		Ours: Side{
			Label:   "pkg/pool.Acquire (untimed), then until the pool has its size Running again (the claimer makes the replacement)",
			Prepare: func(ctx context.Context, e *Env, _ int) error { return readyMembers(ctx, e, name, peerPoolSize) },
			Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
				a, err := acquireWarm(ctx, e, name, fmt.Sprintf("pr%d", round))
				if err != nil {
					return Sample{}, err
				}
				start := time.Now()
				err = firstOf(a.WaitRefill(), readyMembers(ctx, e, name, peerPoolSize))
				return Sample{Wall: time.Since(start)}, err
			},
			Cleanup: func(ctx context.Context, e *Env, _ int) error { return deleteSandboxes(ctx, e) },
		},
		Kubectl: Side{
			Label:   "agent-sandbox: a SandboxClaim Ready (untimed), then until the SandboxWarmPool owns its replicas in Sandboxes Ready again (its controller refills)",
			Prepare: func(ctx context.Context, e *Env, _ int) error { return waitPeerPool(ctx, e, name, peerPoolSize) },
			Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
				if err := claimPeer(ctx, e, name, fmt.Sprintf("ar%d", round), round); err != nil {
					return Sample{}, err
				}
				start := time.Now()
				err := waitPeerPool(ctx, e, name, peerPoolSize)
				return Sample{Wall: time.Since(start)}, err
			},
			Cleanup: func(ctx context.Context, e *Env, _ int) error {
				return deletePeer(ctx, e, peerClaims, roundLabel+"=as-"+name)
			},
		},
		Done: dropBothPools(name),
		Note: "from the claim's hand-over to a full pool again; " + peerNote,
	}
}

// bothPools makes our pool and agent-sandbox's warm pool, both named name,
// of size members each, untimed.
func bothPools(name string, size int) func(ctx context.Context, e *Env) error {
	return func(ctx context.Context, e *Env) error {
		if err := needPeer(ctx, e); err != nil {
			return err
		}
		if err := benchPool(ctx, e, name, size); err != nil {
			return err
		}
		return makePeerPool(ctx, e, name, size)
	}
}

// dropBothPools removes the two pools of a row, so that the next row's
// pools have the node to themselves.
func dropBothPools(name string) func(ctx context.Context, e *Env) error {
	return func(ctx context.Context, e *Env) error {
		if _, _, err := pool.DeletePool(ctx, e.Clientset, e.Namespace, name); err != nil {
			return err
		}
		return dropPeerPool(ctx, e, name)
	}
}

// acquireWarm claims one member of our pool; a cold create is an error here.
func acquireWarm(ctx context.Context, e *Env, poolName, name string) (*pool.Acquired, error) {
	a, err := pool.Acquire(ctx, e.Clientset, claimSpec(name, e.Namespace), pool.AcquireOptions{Pool: poolName, RefillInBackground: true})
	if err != nil {
		return nil, err
	}
	if !a.Warm {
		return nil, fmt.Errorf("the claim was cold: %s", a.Why)
	}
	return a, nil
}

func waitRefills(got []*pool.Acquired) error {
	var err error
	for _, a := range got {
		err = firstOf(err, a.WaitRefill())
	}
	return err
}

// claimPeer creates one SandboxClaim of pool and waits until it is Ready.
func claimPeer(ctx context.Context, e *Env, poolName, name string, round int) error {
	if _, err := e.peer(peerClaims).Create(ctx, peerClaim(name, poolName, round), metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := waitPeerReady(ctx, e.peer(peerClaims), metav1.ListOptions{FieldSelector: "metadata.name=" + name}, 1, e.CreateTimeout)
	return err
}

// kubectlCreateWait is how a kubectl user makes one of the peer's objects:
// kubectl create -f - of its YAML, then kubectl wait for its Ready condition.
func (e *Env) kubectlCreateWait(ctx context.Context, obj *unstructured.Unstructured, ref string) (Sample, error) {
	b, err := yamlOf(obj)
	if err != nil {
		return Sample{}, err
	}
	created, err := e.run(ctx, b, e.kubectl("create", "-f", "-")...)
	if err != nil {
		return created, err
	}
	ready, err := e.run(ctx, nil, e.kubectl("wait", "--for=condition=Ready", ref, "--timeout="+e.CreateTimeout.String())...)
	return created.then(ready), err
}
