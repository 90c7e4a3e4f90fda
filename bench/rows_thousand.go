package main

import (
	"context"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// thousandLabel marks the sandboxes (and kubectl's pods) of the thousand rows.
const thousandLabel = "agentkernel-bench-thousand"

// thousandRows: listing and deleting -thousand sandboxes at once (issue #27),
// only with -thousand: each round makes them all first (untimed), which takes
// minutes. The creates at that scale are the scale rows with -scale.
func thousandRows(n int) []*Scenario {
	if n == 0 {
		return nil
	}
	ours := thousandLabel + "=ours"
	theirs := thousandLabel + "=kubectl"
	need := func(ctx context.Context, e *Env) error {
		if err := needCluster(ctx, e); err != nil {
			return err
		}
		return ensureSandboxes(ctx, e, n)
	}
	ensure := func(ctx context.Context, e *Env, _ int) error { return ensureSandboxes(ctx, e, n) }
	ensureKubectl := func(ctx context.Context, e *Env, round int) error {
		return ensureKubectlPods(ctx, e, n, fmt.Sprintf("kt%d-", round))
	}
	deleteSide := func(label string, args ...string) Side {
		return Side{
			Label:   label,
			Prepare: ensure,
			Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
				s, err := e.run(ctx, nil, e.ours("delete", append(args, "--timeout", "10m")...)...)
				s.Ops = n
				return s, err
			},
		}
	}
	kubectlDelete := Side{
		Label:   "kubectl delete pods -l (waits)",
		Prepare: ensureKubectl,
		Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
			s, err := e.run(ctx, nil, e.kubectl("delete", "pods", "-l", theirs, "--timeout", "10m")...)
			s.Ops = n
			return s, err
		},
	}
	return []*Scenario{
		{
			Name: fmt.Sprintf("list %d sandboxes", n), Cluster: true, MaxRounds: 5, Setup: need,
			Ours:    cmdSide("kubectl agentkernel list", func(e *Env, _ int) []string { return e.ours("list") }),
			Kubectl: cmdSide("kubectl get pods -l (the same pods)", func(e *Env, _ int) []string { return e.kubectl("get", "pods", "-l", ours) }),
			Note:    "pages of 500 on both sides (kubectl's --chunk-size)",
		},
		{
			Name: fmt.Sprintf("list -A, %d sandboxes", n), Cluster: true, MaxRounds: 5, Setup: need,
			Ours: cmdSide("kubectl agentkernel list -A", func(e *Env, _ int) []string { return e.ours("list", "-A") }),
			Kubectl: cmdSide("kubectl get pods -A -l (the same pods)", func(e *Env, _ int) []string {
				return e.kubectl("get", "pods", "-A", "-l", ours)
			}),
		},
		{
			Name: fmt.Sprintf("delete -l, %d sandboxes", n), Cluster: true, MaxRounds: 2, Setup: needCluster,
			Ours:    deleteSide("kubectl agentkernel delete -l (waits)", "-l", ours),
			Kubectl: kubectlDelete,
			Note:    "until every Pod is gone; each round makes them first, untimed",
		},
		{
			Name: fmt.Sprintf("delete --all, %d sandboxes", n), Cluster: true, MaxRounds: 2, Setup: needCluster,
			Ours:    deleteSide("kubectl agentkernel delete --all (waits)", "--all"),
			Kubectl: kubectlDelete,
			Note:    "until every Pod is gone",
		},
	}
}

// ensureSandboxes tops the thousand rows' sandboxes up to n, made in this
// process 50 at a time (untimed), and waits until they run.
func ensureSandboxes(ctx context.Context, e *Env, n int) error {
	running, total, err := e.countRunning(ctx, thousandLabel+"=ours")
	if err != nil {
		return err
	}
	if running == n && total == n {
		return nil
	}
	missing := n - total
	start := time.Now()
	errs := make([]error, max(missing, 0))
	stamp := time.Now().UnixNano() % 1e6
	workqueue.ParallelizeUntil(ctx, 50, len(errs), func(i int) {
		spec := sandbox.NewSpec(fmt.Sprintf("t%d-%d", stamp, i), e.Namespace)
		spec.Network = sandbox.NetworkOpen
		spec.Labels = map[string]string{thousandLabel: "ours"}
		if errs[i] = setResources(&spec, e.ScaleCPU, e.ScaleMem); errs[i] == nil {
			_, errs[i] = sandbox.Create(ctx, e.Clientset, &spec, sandbox.CreateOptions{Wait: true, Timeout: e.CreateTimeout})
		}
	})
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("making the thousand rows' sandboxes: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "bench: made %d sandboxes in %s (untimed)\n", len(errs), time.Since(start).Round(time.Millisecond))
	return nil
}

// ensureKubectlPods makes kubectl's n pods (untimed) with one kubectl
// create -f and waits until they are Ready.
func ensureKubectlPods(ctx context.Context, e *Env, n int, prefix string) error {
	pods := e.Clientset.CoreV1().Pods(e.Namespace)
	if list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: thousandLabel + "=kubectl"}); err != nil || len(list.Items) == n {
		return err
	}
	_, _, waitErr, err := e.kubectlCreateAndWait(ctx, prefix, n, map[string]string{thousandLabel: "kubectl"}, thousandLabel+"=kubectl")
	if err != nil {
		return err
	}
	return waitErr
}

// addNodes adds n simulated nodes to the local cluster c and waits until
// kwok has taken them on.
func addNodes(ctx context.Context, c *localcluster.Cluster, n int) error {
	if n == 0 {
		return nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	names, err := localcluster.AddSimulatedNodes(ctx, cs, c.NodeName, "bench-node", n)
	if err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || !localcluster.SimulatedNodeReady(node) {
				return false, nil
			}
		}
		return true, nil
	})
}
