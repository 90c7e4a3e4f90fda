package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"

	"github.com/agentkernel/kubectl-agentkernel/pkg/clientrate"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

const (
	thousand     = 1000
	fiftyNodes   = 50
	thousandProc = 50 // creates in flight, as 50 agents starting at once
)

// TestThousandSandboxesOnFiftyNodes: 1,000 sandboxes (every tenth with a
// secret environment, so with a Secret) on 50 more simulated nodes all run;
// list and list -A show every one (the API server hands them out in pages of
// 500); delete -l takes half and delete --all the rest, each reporting every
// one; and nothing of theirs is left: no Pod, NetworkPolicy or Secret.
func TestThousandSandboxesOnFiftyNodes(t *testing.T) {
	requireSimulated(t)
	if env.cluster == nil {
		t.Skip("adds simulated nodes to the local test cluster only")
	}
	ctx := context.Background()
	cs := clientFor(t)
	nodes, err := localcluster.AddSimulatedNodes(ctx, cs, env.cluster.NodeName, "e2e-scale", fiftyNodes)
	t.Cleanup(func() {
		if err := localcluster.RemoveSimulatedNodes(context.Background(), cs, nodes); err != nil {
			t.Errorf("removing the simulated nodes: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "kwok takes on the 50 nodes (Ready, and the node controller's not-ready taint gone)", func() bool {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		ready := map[string]bool{}
		for i := range list.Items {
			n := &list.Items[i]
			ready[n.Name] = localcluster.SimulatedNodeReady(n) && len(n.Spec.Taints) == 0
		}
		for _, name := range nodes {
			if !ready[name] {
				return false
			}
		}
		return true
	})

	ns := newNamespace(t)
	label := "e2e-thousand=" + ns // -A finds only this test's
	cpu, err := sandbox.ParseQuantity("--cpu", "10m")
	if err != nil {
		t.Fatal(err)
	}
	memory, err := sandbox.ParseQuantity("--memory", "16Mi")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	errs := make([]error, thousand)
	workqueue.ParallelizeUntil(ctx, thousandProc, thousand, func(i int) {
		spec := sandbox.NewSpec(fmt.Sprintf("s%d", i), ns)
		spec.Labels = map[string]string{"e2e-thousand": ns, "half": fmt.Sprint(i % 2)}
		spec.CPU, spec.Memory = cpu.DeepCopy(), memory.DeepCopy()
		opts := sandbox.CreateOptions{Wait: true, Timeout: 5 * time.Minute}
		if i%10 == 0 {
			spec.SecretEnvNames = []string{"E2E_TOKEN"}
			opts.SecretValues = map[string]string{"E2E_TOKEN": "t" + fmt.Sprint(i)}
		}
		_, errs[i] = sandbox.Create(ctx, cs, &spec, opts)
	})
	failed := 0
	for i, err := range errs {
		if err != nil {
			if failed++; failed <= 10 {
				t.Errorf("create s%d: %v", i, err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d creates failed", failed, thousand)
	}
	assertAllRunning(t, ns, thousand)
	t.Logf("%d sandboxes created and running in %s", thousand, time.Since(start).Round(time.Millisecond))
	assertSpread(t, ns, nodes)
	secrets, err := env.cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: sandbox.ManagedSelector})
	if err != nil || len(secrets.Items) != thousand/10 {
		t.Fatalf("%d sandbox Secrets (err %v), want %d", len(secrets.Items), err, thousand/10)
	}

	for _, args := range [][]string{{"list", "-n", ns}, {"list", "-A", "-l", label}} {
		r := mustPlugin(t, "", append(args, "-o", "name")...)
		if got := len(strings.Fields(r.stdout)); got != thousand {
			t.Fatalf("%v shows %d sandboxes, want %d", args, got, thousand)
		}
	}
	table := mustPlugin(t, "", "list", "-n", ns).stdout
	if rows := strings.Count(table, "Running"); rows != thousand {
		t.Fatalf("list's table shows %d Running sandboxes, want %d", rows, thousand)
	}

	start = time.Now()
	r := mustPlugin(t, "", "delete", "-n", ns, "-l", "half=0")
	t.Logf("delete -l of %d: %s", thousand/2, time.Since(start).Round(time.Millisecond))
	if got := strings.Count(r.stdout, " deleted\n"); got != thousand/2 {
		t.Fatalf("delete -l reported %d deleted, want %d", got, thousand/2)
	}
	start = time.Now()
	r = mustPlugin(t, "", "delete", "-n", ns, "--all")
	t.Logf("delete --all of %d: %s", thousand/2, time.Since(start).Round(time.Millisecond))
	if got := strings.Count(r.stdout, " deleted\n"); got != thousand/2 {
		t.Fatalf("delete --all reported %d deleted, want %d", got, thousand/2)
	}
	// delete waits for the Pods; the garbage collector takes their Secrets and
	// NetworkPolicies after.
	if pods, err := env.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil || len(pods.Items) != 0 {
		t.Fatalf("delete returned with pods left (err %v): %d", err, len(pods.Items))
	}
	eventually(t, 3*time.Minute, "nothing left in "+ns, func() bool { return len(objectsLeft(t, ns)) == 0 })
	if r := mustPlugin(t, "", "delete", "-n", ns, "--all"); !strings.Contains(r.stderr, "No sandboxes found.") {
		t.Fatalf("delete --all after everything was deleted: %s", r)
	}
}

// clientFor is a client of the admin's at the plugin's own client rate, as
// one process that manages many sandboxes (a pool, an MCP server) has.
func clientFor(t *testing.T) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = clientrate.QPS, clientrate.Burst
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// assertSpread fails unless the scheduler put ns's sandboxes on several of
// nodes, and logs how many each runs. Not all fifty: on a busy machine kwok
// renews the leases of fifty nodes late at times, the node controller taints
// them unreachable meanwhile, and the scheduler rightly passes them by.
func assertSpread(t *testing.T, ns string, nodes []string) {
	t.Helper()
	pods, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	on := map[string]int{}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning {
			on[p.Spec.NodeName]++
		}
	}
	used := 0
	for _, n := range nodes {
		if on[n] > 0 {
			used++
		}
	}
	t.Logf("sandboxes per node: %v (%d of the %d added nodes used)", on, used, len(nodes))
	if used < 2 {
		t.Fatalf("the sandboxes ran on %d of the %d added nodes, want several: %v", used, len(nodes), on)
	}
}
