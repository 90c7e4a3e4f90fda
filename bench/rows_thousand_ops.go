package main

// More rows of issue #27 at -thousand: gc over that many ended sandboxes, a
// pool of a fifth of them made and claimed from many clients at once, and
// the egress proxy's grant table over a namespace of that many. Like the
// other thousand rows they run only with -thousand, beside the thousand
// sandboxes that list counts (made first, untimed), so every row works in
// a namespace that full.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// endedLabel marks the sandboxes the gc rows end and collect.
const endedLabel = thousandLabel + "=ended"

// thousandPool is the size of the pool rows at -thousand n (200 at 1,000),
// thousandClients how many clients claim from it at once.
func thousandPool(n int) int { return max(n/5, 1) }

const thousandClients = 50

// thousandOpsRows are the gc, pool and egress rows at -thousand n.
func thousandOpsRows(n int) []*Scenario {
	if n == 0 {
		return nil
	}
	size := thousandPool(n)
	clients := min(thousandClients, size)
	need := func(ctx context.Context, e *Env) error {
		if err := needCluster(ctx, e); err != nil {
			return err
		}
		return ensureSandboxes(ctx, e, n)
	}
	ended := func(ctx context.Context, e *Env, _ int) error { return ensureEnded(ctx, e, n) }
	poolName := "bench-t"
	return []*Scenario{
		{
			Name: fmt.Sprintf("gc, %d ended sandboxes", n), Cluster: true, MaxRounds: 2, Setup: need,
			Ours: Side{
				Label: "kubectl agentkernel gc", Prepare: ended,
				Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
					s, err := e.run(ctx, nil, e.ours("gc")...)
					s.Ops = n
					return s, firstOf(err, expectNone(ctx, e, endedLabel))
				},
			},
			Kubectl: Side{
				Label: "kubectl delete pods -l --field-selector status.phase!=Running,status.phase!=Pending (the same pods)", Prepare: ended,
				Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
					s, err := e.run(ctx, nil, e.kubectl("delete", "pods", "-l", endedLabel,
						"--field-selector", "status.phase!=Running,status.phase!=Pending", "--timeout", "10m")...)
					s.Ops = n
					return s, firstOf(err, expectNone(ctx, e, endedLabel))
				},
			},
			Note: fmt.Sprintf("%d sandboxes whose Pods failed (DeadlineExceeded, written into their status as the kubelet would), beside %d running ones; each round makes and ends them first, untimed", n, n),
		},
		{
			Name: fmt.Sprintf("pool create --size %d → all Running", size), Cluster: true, MaxRounds: 2, Setup: need,
			Ours: Side{
				Label: fmt.Sprintf("kubectl agentkernel pool create --size %d (waits)", size),
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					name := fmt.Sprintf("bench-p%d", round)
					s, err := e.run(ctx, nil, e.ours("pool", "create", name, "--size", fmt.Sprint(size), "--network", "open",
						"--cpu", e.ScaleCPU, "--memory", e.ScaleMem, "--timeout", "10m")...)
					s.Ops = size
					return s, err
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error {
					return dropPool(ctx, e, fmt.Sprintf("bench-p%d", round))
				},
			},
			Kubectl: Side{
				Label: fmt.Sprintf("kubectl create -f (%d pods in one file) + kubectl wait -l", size),
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					s, start, waitErr, err := e.kubectlCreateAndWait(ctx, fmt.Sprintf("kp%d-", round), size,
						map[string]string{roundLabel: "kp"}, roundLabel+"=kp")
					if err != nil {
						return s, err
					}
					s.Wall, s.Ops = time.Since(start), size
					return s, waitErr
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error { return e.deleteKubectlPods(ctx, roundLabel+"=kp") },
			},
			Note: fmt.Sprintf("until every member (every pod) is Running, beside %d running sandboxes", n),
		},
		{
			Name: fmt.Sprintf("%d claims, %d concurrent clients, beside %d", size, clients, n), Cluster: true, MaxRounds: 2,
			Setup: func(ctx context.Context, e *Env) error {
				if err := need(ctx, e); err != nil {
					return err
				}
				return benchPool(ctx, e, poolName, size)
			},
			Ours: Side{
				Label:   fmt.Sprintf("pkg/pool.Acquire from %d clientsets in this process, %d claims each in turn", clients, size/clients),
				Prepare: func(ctx context.Context, e *Env, _ int) error { return readyMembers(ctx, e, poolName, size) },
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return claimBurst(ctx, e, poolName, round, size, clients, false)
				},
				Cleanup: func(ctx context.Context, e *Env, _ int) error { return deleteClaimed(ctx, e, poolName) },
			},
			Kubectl: kubectlBurst("kc", fmt.Sprintf("kubectl create -f (%d pods in one file) + kubectl wait -l (cold)", size), size),
			Done:    func(ctx context.Context, e *Env) error { return dropPool(ctx, e, poolName) },
			Note:    fmt.Sprintf("claims handed over until the last, from a pool of %d Running members, beside %d running sandboxes; the replacements are waited for after the clock stops", size, n),
		},
		{
			// What the clients' protobuf lifts: the row above in JSON, the
			// only difference. A claim lists its pool's members, whole Pods.
			Name: fmt.Sprintf("%d claims, %d concurrent clients, beside %d, in JSON", size, clients, n), Cluster: true, MaxRounds: 2,
			Setup: func(ctx context.Context, e *Env) error {
				if err := need(ctx, e); err != nil {
					return err
				}
				return benchPool(ctx, e, poolName, size)
			},
			Ours: Side{
				Label:   "pkg/pool.Acquire as above, its clients speaking JSON instead of protobuf",
				Prepare: func(ctx context.Context, e *Env, _ int) error { return readyMembers(ctx, e, poolName, size) },
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return claimBurst(ctx, e, poolName, round, size, clients, true)
				},
				Cleanup: func(ctx context.Context, e *Env, _ int) error { return deleteClaimed(ctx, e, poolName) },
			},
			Done: func(ctx context.Context, e *Env) error { return dropPool(ctx, e, poolName) },
			Note: "the claim burst's clients in JSON (as kubectl speaks) instead of protobuf (as the CLI's claims do): what protobuf lifts",
		},
		{
			Name: fmt.Sprintf("egress grant lookup, %d sandboxes in the namespace", n), Cluster: true, MaxRounds: 3, Setup: need,
			Ours: Side{
				Label: "pkg/egress.PodGrants.Lookup of every sandbox's address, 10 times over, in this process",
				Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
					return grantLookups(ctx, e, n, 10)
				},
			},
			Note: "no kubectl equivalent: the absolute time of one lookup (the proxy's work to tell which sandbox a connection is from); the grant table's memory is on stderr and in bench/README.md",
		},
	}
}

// ensureEnded makes n sandboxes labelled endedLabel, waits until they run,
// then ends each as the kubelet does when a TTL runs out (status Failed,
// DeadlineExceeded): the simulated nodes run no kubelet. Untimed.
func ensureEnded(ctx context.Context, e *Env, n int) error {
	pods := e.Clientset.CoreV1().Pods(e.Namespace)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: endedLabel})
	if err != nil {
		return err
	}
	start := time.Now()
	missing := n - len(list.Items)
	errs := make([]error, max(missing, 0))
	stamp := time.Now().UnixNano() % 1e6
	workqueue.ParallelizeUntil(ctx, 50, len(errs), func(i int) {
		spec := sandbox.NewSpec(fmt.Sprintf("g%d-%d", stamp, i), e.Namespace)
		spec.Network = sandbox.NetworkOpen
		spec.TTL = time.Hour
		spec.Labels = map[string]string{thousandLabel: "ended"}
		if errs[i] = setResources(&spec, e.ScaleCPU, e.ScaleMem); errs[i] == nil {
			_, errs[i] = sandbox.Create(ctx, e.Clientset, &spec, sandbox.CreateOptions{Wait: true, Timeout: e.CreateTimeout})
		}
	})
	if err := firstOf(nil, errorsIn(errs)); err != nil {
		return fmt.Errorf("making the gc rows' sandboxes: %w", err)
	}
	if list, err = pods.List(ctx, metav1.ListOptions{LabelSelector: endedLabel}); err != nil {
		return err
	}
	errs = make([]error, len(list.Items))
	workqueue.ParallelizeUntil(ctx, 50, len(list.Items), func(i int) {
		pod := &list.Items[i]
		if pod.Status.Phase == corev1.PodFailed {
			return
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodFailed, Reason: "DeadlineExceeded",
			Message: "Pod was active on the node longer than the specified deadline", PodIP: pod.Status.PodIP, PodIPs: pod.Status.PodIPs}
		_, errs[i] = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	})
	if err := errorsIn(errs); err != nil {
		return fmt.Errorf("ending the gc rows' sandboxes: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: made %d sandboxes and ended %d in %s (untimed)\n", missing, len(list.Items), time.Since(start).Round(time.Millisecond))
	return nil
}

func errorsIn(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// expectNone fails when a pod matching selector is left.
func expectNone(ctx context.Context, e *Env, selector string) error {
	list, err := e.Clientset.CoreV1().Pods(e.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return err
	}
	if len(list.Items) > 0 {
		return fmt.Errorf("%d pods matching %s are left", len(list.Items), selector)
	}
	return nil
}

// dropPool deletes pool name and waits until its members are gone (untimed).
func dropPool(ctx context.Context, e *Env, name string) error {
	if _, _, err := pool.DeletePool(ctx, e.Clientset, e.Namespace, name); err != nil {
		return err
	}
	return waitNone(ctx, e, metav1.ListOptions{LabelSelector: sandbox.LabelPool + "=" + name})
}

// deleteClaimed deletes the sandboxes claimed from the bench pool — every
// sandbox but the thousand rows' — in parallel, and waits until they are
// gone (untimed).
func deleteClaimed(ctx context.Context, e *Env, _ string) error {
	all, err := sandbox.List(ctx, e.Clientset, e.Namespace, "")
	if err != nil {
		return err
	}
	var claimed []corev1.Pod
	var uids []types.UID
	for _, p := range all {
		if _, mine := p.Labels[thousandLabel]; !mine {
			claimed = append(claimed, p)
			uids = append(uids, p.UID)
		}
	}
	var firstErr error
	sandbox.DeleteListed(ctx, e.Clientset, claimed, nil, new(int64), func(d sandbox.Deletion) { firstErr = firstOf(firstErr, d.Err) })
	if firstErr != nil {
		return firstErr
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		left, err := sandbox.List(ctx, e.Clientset, e.Namespace, "")
		if err != nil {
			return err
		}
		still := 0
		for _, p := range left {
			for _, uid := range uids {
				if p.UID == uid {
					still++
				}
			}
		}
		if still == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d claimed sandboxes still there after 5 minutes", still)
		}
	}
}

// grantLookups starts the egress proxy's grant table on the bench
// namespace (as the proxy does: a watch of its Pods, slimmed), grants a
// host to each of the n thousand-row sandboxes that has none yet (an
// annotation, untimed: the simulated nodes run no proxy), then looks every
// sandbox's address up times times. The heap the table holds is reported
// on stderr.
func grantLookups(ctx context.Context, e *Env, n, times int) (Sample, error) {
	if err := grantHosts(ctx, e); err != nil {
		return Sample{}, err
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	g := egress.NewPodGrants(e.Clientset, e.Namespace, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go g.Run(ctx)
	syncStart := time.Now()
	if err := g.WaitForSync(ctx); err != nil {
		return Sample{}, err
	}
	synced := time.Since(syncStart)
	runtime.GC()
	runtime.ReadMemStats(&after)

	list, err := e.Clientset.CoreV1().Pods(e.Namespace).List(ctx, metav1.ListOptions{LabelSelector: thousandLabel + "=ours"})
	if err != nil {
		return Sample{}, err
	}
	var addrs []netip.Addr
	for _, p := range list.Items {
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) < n {
		return Sample{}, fmt.Errorf("%d of the %d sandboxes have an address", len(addrs), n)
	}
	granted, denied := 0, map[string]int{}
	start := time.Now()
	for range times {
		for _, a := range addrs {
			if _, err := g.Lookup(a); err != nil {
				denied[firstWords(err.Error())]++
			} else {
				granted++
			}
		}
	}
	s := Sample{Wall: time.Since(start), Ops: times * len(addrs)}
	total, _ := countPods(ctx, e)
	fmt.Fprintf(os.Stderr, "bench: egress grant table over %d pods: synced in %s, holds %.1f MiB of heap (%.1f KiB a pod); %d lookups %s each, %d granted, denied: %v\n",
		total, synced.Round(time.Millisecond), float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20),
		float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1024/float64(max(total, 1)),
		s.Ops, (s.Wall / time.Duration(s.Ops)).Round(10*time.Nanosecond), granted, denied)
	if len(denied) > 0 {
		return s, fmt.Errorf("%d lookups were denied: %v", s.Ops-granted, denied)
	}
	return s, nil
}

func firstWords(s string) string {
	f := strings.Fields(s)
	return strings.Join(f[min(len(f), 2):min(len(f), 6)], " ")
}

func countPods(ctx context.Context, e *Env) (int, error) {
	list, err := e.Clientset.CoreV1().Pods(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	return len(list.Items), nil
}

// grantHosts annotates the thousand rows' sandboxes with one granted host,
// as create --allow-host does (untimed).
func grantHosts(ctx context.Context, e *Env) error {
	pods := e.Clientset.CoreV1().Pods(e.Namespace)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: thousandLabel + "=ours"})
	if err != nil {
		return err
	}
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, fence.AnnotationAllowHosts, `["api.example.com:443"]`))
	errs := make([]error, len(list.Items))
	workqueue.ParallelizeUntil(ctx, 50, len(list.Items), func(i int) {
		if _, ok := list.Items[i].Annotations[fence.AnnotationAllowHosts]; ok {
			return
		}
		_, errs[i] = pods.Patch(ctx, list.Items[i].Name, types.MergePatchType, patch, metav1.PatchOptions{})
	})
	return errorsIn(errs)
}
