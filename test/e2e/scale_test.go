package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// scaleN is how many sandboxes the scale tests start at once: 100, or
// E2E_SCALE on a cluster too small for that.
func scaleN(t *testing.T) int {
	t.Helper()
	n := 100
	if s := os.Getenv("E2E_SCALE"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("E2E_SCALE=%q: want a positive number", s)
		}
	}
	return n
}

// Small, so that 100 fit on one node (the simulated one has 64 CPUs).
var scaleResources = []string{"--cpu", "50m", "--memory", "64Mi"}

const scaleProcs = 20

// roundName is sandbox i's name in a round: each round takes names of its
// own. kwok (v0.8.0, PodController.deleteResource) finishes
// a Pod's deletion by name, with no UID precondition, and often twice for
// the same Pod — the second delete seconds after the first. A sandbox
// re-created under the name meanwhile is deleted by it (round 2 of these
// tests saw "pods not found" while lifting a new Pod's gate, with kwok's
// log showing the second delete). A real kubelet deletes with the Pod's UID
// as precondition, so this is the simulator's. A name re-used while its old
// NetworkPolicy is still being collected is
// TestCreateReplacesOnlyStaleDependents' (pkg/sandbox).
func roundName(round, i int) string { return fmt.Sprintf("r%d-s%d", round, i) }

// TestHundredConcurrentCreatesFromManyProcesses: 100 sandboxes created at
// once by 20 processes of the real binary, each making 5 in turn, all
// Running; then one delete removes every one and nothing is left. Two
// rounds, each with names of its own (roundName).
func TestHundredConcurrentCreatesFromManyProcesses(t *testing.T) {
	requireCluster(t)
	n := scaleN(t)
	ns := newNamespace(t)
	for round := range 2 {
		var wg sync.WaitGroup
		failures := make(chan string, n)
		for w := range scaleProcs {
			wg.Go(func() {
				for i := w; i < n; i += scaleProcs {
					name := roundName(round, i)
					r := plugin(t, "", append([]string{"create", name, "-n", ns, "--label", "e2e-scale=yes"}, scaleResources...)...)
					if r.code != 0 || strings.TrimSpace(r.stdout) != "sandbox/"+name+" created" {
						failures <- fmt.Sprintf("create %s: %s", name, r)
					}
				}
			})
		}
		wg.Wait()
		close(failures)
		for f := range failures {
			t.Errorf("round %d: %s", round, f)
		}
		if t.Failed() {
			t.FailNow()
		}
		assertAllRunning(t, ns, n)
		names := strings.Fields(mustPlugin(t, "", "list", "-n", ns, "-o", "name").stdout)
		if len(names) != n {
			t.Fatalf("round %d: list shows %d sandboxes, want %d: %v", round, len(names), n, names)
		}
		deleted := strings.Count(mustPlugin(t, "", "delete", "-n", ns, "-l", "e2e-scale=yes").stdout, " deleted\n")
		if deleted != n {
			t.Fatalf("round %d: delete reported %d sandboxes deleted, want %d", round, deleted, n)
		}
		if pods, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{}); err != nil || len(pods.Items) != 0 {
			t.Fatalf("round %d: delete returned with pods left (err %v): %d", round, err, len(pods.Items))
		}
	}
	eventually(t, 2*time.Minute, "nothing left in "+ns, func() bool { return len(objectsLeft(t, ns)) == 0 })
}

// TestHundredConcurrentCreatesFromOneProcess: the same through pkg/sandbox
// from one process with one client at the plugin's own client rate (a pool
// or an MCP server creates sandboxes like this). With client-go's default of
// 5 requests/s this took minutes.
func TestHundredConcurrentCreatesFromOneProcess(t *testing.T) {
	requireCluster(t)
	n := scaleN(t)
	ns := newNamespace(t)
	cs := clientFor(t)
	ctx := context.Background()
	cpu, err := sandbox.ParseQuantity("--cpu", "50m")
	if err != nil {
		t.Fatal(err)
	}
	memory, err := sandbox.ParseQuantity("--memory", "64Mi")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		var wg sync.WaitGroup
		errs := make([]error, n)
		uids := make([]string, n)
		for i := range n {
			wg.Go(func() {
				spec := sandbox.NewSpec(roundName(round, i), ns)
				spec.Labels = map[string]string{"e2e-scale": "yes"}
				spec.CPU, spec.Memory = cpu.DeepCopy(), memory.DeepCopy()
				created, err := sandbox.Create(ctx, cs, &spec, sandbox.CreateOptions{Wait: true, Timeout: 5 * time.Minute})
				if err == nil {
					uids[i] = string(created.Pod.UID)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: create %s: %v", round, roundName(round, i), err)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		if distinct := len(slices.Compact(slices.Sorted(slices.Values(uids)))); distinct != n {
			t.Fatalf("round %d: %d distinct pods for %d creates", round, distinct, n)
		}
		assertAllRunning(t, ns, n)
		deleted := strings.Count(mustPlugin(t, "", "delete", "-n", ns, "--all").stdout, " deleted\n")
		if deleted != n {
			t.Fatalf("round %d: delete --all reported %d deleted, want %d", round, deleted, n)
		}
	}
	eventually(t, 2*time.Minute, "nothing left in "+ns, func() bool { return len(objectsLeft(t, ns)) == 0 })
}

// assertAllRunning fails unless exactly n sandbox pods in ns are Running,
// as the API server says.
func assertAllRunning(t *testing.T, ns string, n int) {
	t.Helper()
	pods, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sandbox.ManagedSelector})
	if err != nil {
		t.Fatal(err)
	}
	var notRunning []string
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning {
			notRunning = append(notRunning, p.Name+"="+string(p.Status.Phase))
		}
	}
	if len(pods.Items) != n || len(notRunning) > 0 {
		t.Fatalf("%d sandbox pods, want %d, all Running; not Running: %v", len(pods.Items), n, notRunning)
	}
}
