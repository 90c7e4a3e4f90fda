package main

// The pool rows (issue #10): a warm claim against the cold create it
// replaces — as a whole command and in-process — and a burst of claims
// from many clients at once. A claim takes a member that is already
// Running, so before each timed round the pool is waited for until it has
// the members the round will take (untimed); sandboxes and members are
// small (-scale-cpu, -scale-memory) so that a hundred fit the simulated node.
//
// BENCH_POOL_PROFILE=FILE writes a CPU profile of the in-process claims.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// poolRows are the pool rows; burst claims come from clients at once.
func poolRows(burst, clients int) []*Scenario {
	trace := &requestTrace{}
	var profile func()
	// The kubectl side of every pool row: what there is without a pool.
	kubectlCold := Side{
		Label: "kubectl create -f + kubectl wait --for=condition=Ready (cold)",
		Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
			return e.kubectlCreateReady(ctx, fmt.Sprintf("kw%d", round), map[string]string{roundLabel: "kw"}, e.ScaleCPU, e.ScaleMem)
		},
		Cleanup: func(ctx context.Context, e *Env, round int) error {
			return e.deleteKubectlPods(ctx, roundLabel+"=kw")
		},
	}
	return []*Scenario{
		{
			Name:    "create --pool → exec-ready (warm claim)",
			Cluster: true,
			Setup:   func(ctx context.Context, e *Env) error { return benchPool(ctx, e, "bench-cmd", 1) },
			Ours: Side{
				Label:   "kubectl agentkernel create --pool (claims, makes the replacement, exits)",
				Prepare: func(ctx context.Context, e *Env, round int) error { return readyMembers(ctx, e, "bench-cmd", 1) },
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.run(ctx, nil, e.ours("create", fmt.Sprintf("pc%d", round), "--pool", "bench-cmd")...)
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error { return deleteSandboxes(ctx, e) },
			},
			Kubectl: kubectlCold,
			Note:    "the whole command: process start, claim, replacement created; its member was Running before the clock started",
		},
		{
			Name:    "claim → exec-ready, in-process",
			Cluster: true,
			Setup: func(ctx context.Context, e *Env) error {
				profile = startProfile(os.Getenv("BENCH_POOL_PROFILE"))
				return benchPool(ctx, e, "bench-ip", 1)
			},
			Ours: Side{
				Label:   "pkg/pool.Acquire (the replacement made in the background)",
				Prepare: func(ctx context.Context, e *Env, round int) error { return readyMembers(ctx, e, "bench-ip", 1) },
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					cs, err := trace.clientset(e.Config)
					if err != nil {
						return Sample{}, err
					}
					trace.reset()
					start := time.Now()
					a, err := pool.Acquire(ctx, cs, claimSpec(fmt.Sprintf("ip%d", round), e.Namespace), pool.AcquireOptions{Pool: "bench-ip", RefillInBackground: true})
					s := Sample{Wall: time.Since(start)}
					if err != nil {
						return s, err
					}
					if !a.Warm {
						return s, fmt.Errorf("the claim was cold: %s", a.Why)
					}
					trace.keep(round)
					return s, a.WaitRefill()
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error { return deleteSandboxes(ctx, e) },
			},
			Kubectl: kubectlCold,
			Done: func(ctx context.Context, e *Env) error {
				profile()
				fmt.Fprintln(os.Stderr, "bench: where an in-process claim's time goes (median of each request, in order):")
				trace.print(os.Stderr)
				return nil
			},
			Note: "in this process, one client; a claim is a list of the pool's members, the claim's one write and a list of the name (the replacement's create runs alongside)",
		},
		{
			Name:      fmt.Sprintf("%d claims, %d concurrent clients", burst, clients),
			Cluster:   true,
			MaxRounds: 3,
			Setup:     func(ctx context.Context, e *Env) error { return benchPool(ctx, e, "bench-burst", burst) },
			Ours: Side{
				Label:   fmt.Sprintf("pkg/pool.Acquire from %d clientsets (connections) in this process, %d claims each in turn", clients, burst/clients),
				Prepare: func(ctx context.Context, e *Env, round int) error { return readyMembers(ctx, e, "bench-burst", burst) },
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return claimBurst(ctx, e, "bench-burst", round, burst, clients, false)
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error { return deleteSandboxes(ctx, e) },
			},
			Kubectl: kubectlBurst("kb", "kubectl create -f (N pods in one file) + kubectl wait -l (cold)", burst),
			Note:    "claims handed over (each Running when handed over) until the last; the replacements, made alongside, are waited for after the clock stops",
		},
	}
}

// kubectlBurst is kubectl's side of the burst rows: n pods in one
// kubectl create -f, labelled tag, then kubectl wait -l; Running counted.
func kubectlBurst(tag, label string, n int) Side {
	return Side{
		Label: label,
		Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
			s, start, waitErr, err := e.kubectlCreateAndWait(ctx, fmt.Sprintf("%s%d-", tag, round), n,
				map[string]string{roundLabel: tag}, roundLabel+"="+tag)
			if err != nil {
				return s, err
			}
			s.Wall, s.Ops = time.Since(start), n
			running, _, cerr := e.countRunning(ctx, roundLabel+"="+tag)
			s.Done, s.Of = running, n
			return s, firstOf(waitErr, cerr)
		},
		Cleanup: func(ctx context.Context, e *Env, round int) error {
			return e.deleteKubectlPods(ctx, roundLabel+"="+tag)
		},
	}
}

func claimSpec(name, ns string) *sandbox.Spec {
	s := sandbox.NewSpec(name, ns)
	return &s
}

// benchPool makes pool name of size members (network open, like every
// compared row: kubectl makes no NetworkPolicy), untimed.
func benchPool(ctx context.Context, e *Env, name string, size int) error {
	if err := needCluster(ctx, e); err != nil {
		return err
	}
	spec := sandbox.NewSpec(name, e.Namespace)
	spec.Network = sandbox.NetworkOpen
	if err := setResources(&spec, e.ScaleCPU, e.ScaleMem); err != nil {
		return err
	}
	p, err := pool.NewPool(name, spec, size)
	if err != nil {
		return err
	}
	_, err = pool.CreatePool(ctx, e.Clientset, p, pool.PoolOptions{Wait: true, Timeout: e.CreateTimeout})
	return err
}

// readyMembers waits until pool has n ready members (the last round's
// replacements starting), untimed.
func readyMembers(ctx context.Context, e *Env, poolName string, n int) error {
	p, err := pool.GetPool(ctx, e.Clientset, e.Namespace, poolName)
	if err != nil {
		return err
	}
	p.Size = n
	_, err = pool.WaitForPool(ctx, e.Clientset, p, e.CreateTimeout, nil)
	return err
}

// deleteSandboxes deletes every sandbox of the bench namespace (claimed or
// cold; not the pools' warm members) and waits until they are gone.
func deleteSandboxes(ctx context.Context, e *Env) error {
	pods, err := sandbox.List(ctx, e.Clientset, e.Namespace, "")
	if err != nil {
		return err
	}
	for i := range pods {
		if err := sandbox.DeletePod(ctx, e.Clientset, &pods[i], new(int64)); err != nil {
			return err
		}
	}
	return waitNone(ctx, e, metav1.ListOptions{LabelSelector: sandbox.SandboxSelector})
}

// claimBurst makes n claims from clients clientsets at once, each client
// claiming in turn, and reports on stderr per-claim latencies, the claims
// that lost a race (a 409 on the claim's write) and where the CPU went.
// The clients speak protobuf as the CLI's claims do (cli.Clients'
// claimClientset), unless json: the bench's measure of what that lifts.
func claimBurst(ctx context.Context, e *Env, poolName string, round, n, clients int, json bool) (Sample, error) {
	var conflicts atomic.Int64
	css := make([]kubernetes.Interface, clients)
	for i := range css {
		// A clientset of its own: client-go shares one transport per TLS
		// configuration, unless the config has a Dial of its own.
		cfg := restclient.CopyConfig(e.Config)
		cfg.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		if !json {
			cfg.ContentType = runtime.ContentTypeProtobuf
			cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
		}
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countConflicts{rt, &conflicts} })
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return Sample{}, err
		}
		// One request first: the TLS handshake is not a claim's.
		if _, err := cs.CoreV1().Namespaces().Get(ctx, e.Namespace, metav1.GetOptions{}); err != nil {
			return Sample{}, err
		}
		css[i] = cs
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	var lat []time.Duration
	var got []*pool.Acquired
	warm := 0
	cpu := takeCPU(e.components)
	profiled := profileAPIServer(ctx, e, 10)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for i := c; i < n; i += clients {
				t0 := time.Now()
				a, err := pool.Acquire(ctx, css[c], claimSpec(fmt.Sprintf("b%d-%d", round, i), e.Namespace), pool.AcquireOptions{Pool: poolName, RefillInBackground: true})
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					firstErr = firstOf(firstErr, err)
				} else {
					lat, got = append(lat, d), append(got, a)
					if a.Warm {
						warm++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s := Sample{Wall: time.Since(start), Ops: n, Done: warm, Of: n}
	used := takeCPU(e.components).since(cpu)
	profiled()
	for _, a := range got {
		firstErr = firstOf(firstErr, a.WaitRefill())
	}
	wire := "protobuf"
	if json {
		wire = "JSON"
	}
	fmt.Fprintf(os.Stderr, "bench: %d claims from %d clients (%s): %.0f claims/s; per claim median %s, p90 %s; %d warm; %d writes lost a race (409)\n",
		n, clients, wire, float64(n)/s.Wall.Seconds(), durationQuantile(lat, 0.5), durationQuantile(lat, 0.9), warm, conflicts.Load())
	fmt.Fprintf(os.Stderr, "bench: CPU during the %d claims: %s\n", n, used)
	return s, firstErr
}

// countConflicts counts the 409 Conflict answers that pass through it.
type countConflicts struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countConflicts) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusConflict {
		c.n.Add(1)
	}
	return resp, err
}

// requestTrace times every request of the in-process claims.
type requestTrace struct {
	mu      sync.Mutex
	cs      kubernetes.Interface
	current []tracedRequest
	kept    [][]tracedRequest
}

type tracedRequest struct {
	what string
	took time.Duration
}

func (t *requestTrace) clientset(base *restclient.Config) (kubernetes.Interface, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cs == nil {
		cfg := restclient.CopyConfig(base)
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &tracingTransport{rt: rt, trace: t} })
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		t.cs = cs
	}
	return t.cs, nil
}

func (t *requestTrace) reset() { t.mu.Lock(); t.current = nil; t.mu.Unlock() }

// keep records the round's requests; warm-up rounds are left out by
// measure's own accounting, so the first round kept is dropped too.
func (t *requestTrace) keep(round int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if round > 0 {
		t.kept = append(t.kept, t.current)
	}
}

// print shows, for the most common sequence of requests, the median of each.
func (t *requestTrace) print(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	byShape := map[string][][]tracedRequest{}
	best := ""
	for _, k := range t.kept {
		var shape []string
		for _, r := range k {
			shape = append(shape, r.what)
		}
		key := strings.Join(shape, "|")
		byShape[key] = append(byShape[key], k)
		if len(byShape[key]) > len(byShape[best]) {
			best = key
		}
	}
	runs := byShape[best]
	if len(runs) == 0 {
		return
	}
	for i, r := range runs[0] {
		var ds []time.Duration
		for _, run := range runs {
			ds = append(ds, run[i].took)
		}
		fmt.Fprintf(w, "bench:   %-60s %s\n", r.what, durationQuantile(ds, 0.5))
	}
	fmt.Fprintf(w, "bench:   (%d of %d claims made these requests; the replacement's overlap the claim's)\n", len(runs), len(t.kept))
}

type tracingTransport struct {
	rt    http.RoundTripper
	trace *requestTrace
}

func (t *tracingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(req)
	what := req.Method + " " + shortPath(req.URL.Path)
	if req.URL.RawQuery != "" && req.Method == http.MethodGet {
		what += "?" + strings.Split(req.URL.RawQuery, "&")[0]
	}
	t.trace.mu.Lock()
	t.trace.current = append(t.trace.current, tracedRequest{what, time.Since(start)})
	t.trace.mu.Unlock()
	return resp, err
}

// shortPath drops the namespace and generated names from a request path.
func shortPath(p string) string {
	parts := strings.Split(p, "/")
	for i := range parts {
		if i > 0 && parts[i-1] == "namespaces" {
			parts[i] = "NS"
		}
		if strings.HasPrefix(parts[i], "agentkernel-") {
			parts[i] = "NAME"
		}
	}
	return strings.Join(parts, "/")
}

func startProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		return func() { f.Close() }
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		fmt.Fprintf(os.Stderr, "bench: CPU profile of the in-process claims in %s (go tool pprof -top %s)\n", path, path)
	}
}

// durationQuantile by nearest rank, of real samples.
func durationQuantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(float64(len(s))*q + 0.999999)
	return s[max(rank, 1)-1].Round(100 * time.Microsecond)
}
