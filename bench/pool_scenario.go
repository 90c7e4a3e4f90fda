package main

// The pool rows (issue #10): a warm claim against the cold create it
// replaces, in-process and as a whole command, and many claims at once. They
// live in this file with one entry point, runPoolRows, so that they can be
// wired into any shape of bench (main.go calls it for -pools).
//
// Claims need members that are ready: every pool here is made large enough
// for its row's rounds, and waited for, before the clock starts. Members and
// sandboxes are small (-pool-cpu/-pool-memory) so a hundred fit the
// simulated node; the network is open, as in the other rows, since plain
// kubectl creates no NetworkPolicy.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// poolEnv is what the pool rows need from the bench.
type poolEnv struct {
	Kubeconfig, Plugin, Kubectl, Namespace string
	Rounds                                 int
	// Clients and Claims: the concurrent row makes Claims claims from
	// Clients clients (each its own connection), Claims/Clients each.
	Clients, Claims int
	CPU, Memory     string
	// Profile, if set, is where the CPU profile of the in-process claims goes.
	Profile string
	Out     io.Writer
}

// runPoolRows runs every pool row and prints their table.
func runPoolRows(ctx context.Context, e poolEnv) error {
	cs, _, err := poolClients(e.Kubeconfig)
	if err != nil {
		return err
	}
	spec := sandbox.NewSpec("bench", e.Namespace)
	spec.Network = sandbox.NetworkOpen
	if spec.CPU, err = resource.ParseQuantity(e.CPU); err != nil {
		return err
	}
	if spec.Memory, err = resource.ParseQuantity(e.Memory); err != nil {
		return err
	}
	var rows []poolRow

	// 1. claim → exec-ready, in-process, against a cold create + wait; the
	// replacement is made in the background (RefillInBackground), as
	// create --pool and run --pool do, and waited for untimed.
	stopProfile := startProfile(e.Profile)
	trace := &requestTrace{}
	for _, encoding := range []string{"json", "protobuf"} {
		claim, claimExec, err := inProcessClaims(ctx, e, spec, encoding, trace)
		if err != nil {
			return err
		}
		rows = append(rows,
			poolRow{"claim → exec-ready, in-process, " + encoding, claim, "", nil},
			poolRow{"claim + first exec true, in-process, " + encoding, claimExec, "", nil},
		)
	}
	stopProfile()
	var cold []time.Duration
	for i := range e.Rounds + 1 {
		s := spec
		s.Name = fmt.Sprintf("cold%d", i)
		start := time.Now()
		if _, err := sandbox.Create(ctx, cs, &s, sandbox.CreateOptions{Wait: true, Timeout: 2 * time.Minute}); err != nil {
			return fmt.Errorf("in-process cold create: %w", err)
		}
		if i > 0 {
			cold = append(cold, time.Since(start))
		}
	}
	rows[0].otherName, rows[0].other = "sandbox.Create + wait Running", cold

	// 2. the whole command.
	if _, err := benchPool(ctx, cs, "cmd", spec, e.Rounds+1); err != nil {
		return err
	}
	var cmdClaim, cmdCold, kubectlCold []time.Duration
	podYAML, err := kubectlPodYAML(spec)
	if err != nil {
		return err
	}
	for i := range e.Rounds + 1 {
		d, err := timeCmd(nil, e.Plugin, "--kubeconfig", e.Kubeconfig, "create", fmt.Sprintf("pc%d", i), "-n", e.Namespace, "--pool", "cmd")
		if err != nil {
			return err
		}
		dc, err := timeCmd(nil, e.Plugin, "--kubeconfig", e.Kubeconfig, "create", fmt.Sprintf("cc%d", i), "-n", e.Namespace,
			"--network", "open", "--cpu", e.CPU, "--memory", e.Memory)
		if err != nil {
			return err
		}
		pod := bytes.ReplaceAll(podYAML, []byte("agentkernel-bench"), []byte(fmt.Sprintf("kc%d", i)))
		dk, err := timeCmd(pod, e.Kubectl, "--kubeconfig", e.Kubeconfig, "create", "-f", "-")
		if err != nil {
			return err
		}
		dw, err := timeCmd(nil, e.Kubectl, "--kubeconfig", e.Kubeconfig, "wait", "-n", e.Namespace, "--for=condition=Ready", fmt.Sprintf("pod/kc%d", i))
		if err != nil {
			return err
		}
		if i > 0 {
			cmdClaim, cmdCold, kubectlCold = append(cmdClaim, d), append(cmdCold, dc), append(kubectlCold, dk+dw)
		}
	}
	rows = append(rows,
		poolRow{"create --pool (whole command)", cmdClaim, "create, cold (whole command)", cmdCold},
		poolRow{"  (for scale: kubectl create -f + wait)", kubectlCold, "", nil},
	)

	// 3. many claims at once, from many clients, after the rows above have
	// been cleared away (room on the node, short lists).
	if err := clearNamespace(ctx, cs, e.Namespace); err != nil {
		return err
	}
	var bursts []string
	for _, encoding := range []string{"json", "protobuf"} {
		pool := "burst-" + encoding[:4]
		if _, err := benchPool(ctx, cs, pool, spec, e.Claims); err != nil {
			return err
		}
		lat, wall, warm, err := concurrentClaims(ctx, e, pool, encoding)
		if err != nil {
			return err
		}
		rows = append(rows, poolRow{fmt.Sprintf("%d claims, %d concurrent clients, %s (per claim)", e.Claims, e.Clients, encoding), lat, "", nil})
		bursts = append(bursts, fmt.Sprintf("%d claims from %d %s clients: %.0f claims/s (%s wall, replacements included), %d warm",
			e.Claims, e.Clients, encoding, float64(e.Claims)/wall.Seconds(), wall.Round(time.Millisecond), warm))
	}

	tw := tabwriter.NewWriter(e.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "pool row\tmedian\tp90\tcompared with\tmedian\tp90\tratio\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.name, ms(quantile(r.ours, 0.5)), ms(quantile(r.ours, 0.9)),
			r.otherName, ms(quantile(r.other, 0.5)), ms(quantile(r.other, 0.9)), ratio(r.ours, r.other))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, b := range bursts {
		fmt.Fprintln(e.Out, b)
	}
	fmt.Fprintln(e.Out, "where an in-process claim's time goes (median per request, in order):")
	trace.print(e.Out)
	if e.Profile != "" {
		fmt.Fprintf(e.Out, "CPU profile of the in-process claims: %s (go tool pprof -top %s)\n", e.Profile, e.Profile)
	}
	return nil
}

type poolRow struct {
	name      string
	ours      []time.Duration
	otherName string
	other     []time.Duration
}

func claimSpec(name, ns string) *sandbox.Spec {
	s := sandbox.NewSpec(name, ns)
	return &s
}

// inProcessClaims claims e.Rounds sandboxes (after one warm-up) from a
// fresh pool, each followed by an exec, with a client of the encoding.
func inProcessClaims(ctx context.Context, e poolEnv, spec sandbox.Spec, encoding string, trace *requestTrace) (claim, claimExec []time.Duration, err error) {
	cs, cfg, err := poolClientsTraced(e.Kubeconfig, trace)
	if err != nil {
		return nil, nil, err
	}
	if encoding == "protobuf" {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		if cs, err = kubernetes.NewForConfig(cfg); err != nil {
			return nil, nil, err
		}
	}
	pool, err := benchPool(ctx, cs, "ip-"+encoding[:4], spec, e.Rounds+1)
	if err != nil {
		return nil, nil, err
	}
	for i := range e.Rounds + 1 {
		name := fmt.Sprintf("ip%s%d", encoding[:4], i)
		trace.reset()
		start := time.Now()
		a, err := sandbox.Acquire(ctx, cs, claimSpec(name, e.Namespace), sandbox.AcquireOptions{Pool: pool.Name, RefillInBackground: true})
		if err != nil {
			return nil, nil, fmt.Errorf("in-process claim: %w", err)
		}
		claimed := time.Since(start)
		ex := sandbox.NewPodExec(cfg, cs.CoreV1().RESTClient(), sandbox.RemoteExecutor{}, a.Pod)
		if err := ex.Run(ctx, []string{"true"}, nil, io.Discard, nil); err != nil {
			return nil, nil, fmt.Errorf("exec in a claimed sandbox: %w", err)
		}
		execReady := time.Since(start)
		if err := a.WaitRefill(); err != nil {
			return nil, nil, err
		}
		if i == 0 {
			continue // warm-up: connections, discovery
		}
		if !a.Warm {
			return nil, nil, fmt.Errorf("round %d was not warm (%s): make the pool larger", i, a.Why)
		}
		claim, claimExec = append(claim, claimed), append(claimExec, execReady)
		if encoding == "json" {
			trace.keep()
		}
	}
	return claim, claimExec, nil
}

// clearNamespace deletes every pool and pod of the bench namespace and
// waits until the pods are gone.
func clearNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	pools, _, err := sandbox.ListPools(ctx, cs, ns)
	if err != nil {
		return err
	}
	for _, p := range pools {
		if _, _, err := sandbox.DeletePool(ctx, cs, ns, p.Name); err != nil {
			return err
		}
	}
	if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{}); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(list.Items) == 0 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the bench namespace's pods were not gone within 5m")
}

// benchPool makes a pool of size ready members, waited for.
func benchPool(ctx context.Context, cs kubernetes.Interface, name string, spec sandbox.Spec, size int) (*sandbox.Pool, error) {
	p, err := sandbox.NewPool(name, spec, size)
	if err != nil {
		return nil, err
	}
	if _, err := sandbox.CreatePool(ctx, cs, p, sandbox.PoolOptions{Wait: true, Timeout: 5 * time.Minute}); err != nil {
		return nil, fmt.Errorf("pool %s: %w", name, err)
	}
	return p, nil
}

// concurrentClaims makes e.Claims claims from e.Clients clients at once,
// each client its own clientset (its own connection), claiming in turn.
func concurrentClaims(ctx context.Context, e poolEnv, pool, encoding string) (lat []time.Duration, wall time.Duration, warm int, err error) {
	clients := make([]kubernetes.Interface, e.Clients)
	counter := &requestCounter{counts: map[string]int{}}
	defer func() { fmt.Fprintf(e.Out, "%s burst: requests by kind and status: %v\n", encoding, counter.summary()) }()
	for i := range clients {
		cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
		if err != nil {
			return nil, 0, 0, err
		}
		cfg.QPS, cfg.Burst = -1, 0
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{rt: rt, c: counter} }
		if encoding == "protobuf" {
			cfg.ContentType = "application/vnd.kubernetes.protobuf"
			cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		}
		if clients[i], err = kubernetes.NewForConfig(cfg); err != nil {
			return nil, 0, 0, err
		}
		// One request first: the TLS handshake is not a claim's.
		if _, err := clients[i].CoreV1().Namespaces().Get(ctx, e.Namespace, metaGet); err != nil {
			return nil, 0, 0, err
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	var refills []*sandbox.Acquired
	start := time.Now()
	for c := range e.Clients {
		wg.Go(func() {
			for i := c; i < e.Claims; i += e.Clients {
				t0 := time.Now()
				a, err := sandbox.Acquire(ctx, clients[c], claimSpec(fmt.Sprintf("b%d", i), e.Namespace), sandbox.AcquireOptions{Pool: pool, RefillInBackground: true})
				d := time.Since(t0)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					refills = append(refills, a)
					lat = append(lat, d)
					if a.Warm {
						warm++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// The replacements are part of what the claims cost the cluster: the
	// wall time ends when the last one exists.
	for _, a := range refills {
		if err := a.WaitRefill(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return lat, time.Since(start), warm, firstErr
}

func poolClients(kubeconfig string) (kubernetes.Interface, *restclient.Config, error) {
	return poolClientsTraced(kubeconfig, nil)
}

// poolClientsTraced builds a clientset with no client-side rate limit (as
// the plugin's own, on branch perf), optionally timing every request.
func poolClientsTraced(kubeconfig string, trace *requestTrace) (kubernetes.Interface, *restclient.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	cfg.QPS, cfg.Burst = -1, 0
	if trace != nil {
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &tracingTransport{rt: rt, trace: trace} }
	}
	cs, err := kubernetes.NewForConfig(cfg)
	return cs, cfg, err
}

// requestTrace records the requests of one claim at a time.
type requestTrace struct {
	mu      sync.Mutex
	current []tracedRequest
	kept    [][]tracedRequest
}

type tracedRequest struct {
	what string
	took time.Duration
}

func (t *requestTrace) reset() { t.mu.Lock(); t.current = nil; t.mu.Unlock() }

func (t *requestTrace) keep() {
	t.mu.Lock()
	t.kept = append(t.kept, t.current)
	t.mu.Unlock()
}

// print shows, for the most common sequence of requests, each one's
// median duration.
func (t *requestTrace) print(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	byShape := map[string][][]tracedRequest{}
	for _, k := range t.kept {
		var shape []string
		for _, r := range k {
			shape = append(shape, r.what)
		}
		key := strings.Join(shape, "|")
		byShape[key] = append(byShape[key], k)
	}
	best := ""
	for k, v := range byShape {
		if len(v) > len(byShape[best]) {
			best = k
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
		fmt.Fprintf(w, "  %-70s %s\n", r.what, ms(quantile(ds, 0.5)))
	}
	fmt.Fprintf(w, "  (%d of %d claims made these requests; the replacement's run alongside the claim's own)\n", len(runs), len(t.kept))
}

// requestCounter counts requests by method, path shape and status.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *requestCounter) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys []string
	for k := range c.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s: %d", k, c.counts[k]))
	}
	return strings.Join(out, ", ")
}

type countingTransport struct {
	rt http.RoundTripper
	c  *requestCounter
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	code := 0
	if resp != nil {
		code = resp.StatusCode
	}
	t.c.mu.Lock()
	t.c.counts[fmt.Sprintf("%s %s %d", req.Method, shortPath(req.URL.Path), code)]++
	t.c.mu.Unlock()
	return resp, err
}

type tracingTransport struct {
	rt    http.RoundTripper
	trace *requestTrace
}

func (t *tracingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(req)
	what := req.Method + " " + shortPath(req.URL.Path)
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
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// kubectlPodYAML is the same hardened pod, for kubectl to create by hand.
func kubectlPodYAML(spec sandbox.Spec) ([]byte, error) {
	spec.Name = "bench"
	return yaml.Marshal(spec.Pod())
}

var metaGet = metav1.GetOptions{}

func timeCmd(stdin []byte, bin string, args ...string) (time.Duration, error) {
	c := exec.Command(bin, args...)
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var errOut bytes.Buffer
	c.Stderr = &errOut
	start := time.Now()
	if err := c.Run(); err != nil {
		return 0, fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), err, errOut.String())
	}
	return time.Since(start), nil
}

// quantile by nearest rank, of real samples.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(float64(len(s))*q + 0.999999)
	return s[max(rank, 1)-1]
}

func ms(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func ratio(a, b []time.Duration) string {
	if len(a) == 0 || len(b) == 0 {
		return ""
	}
	return fmt.Sprintf("%.3f", float64(quantile(a, 0.5))/float64(quantile(b, 0.5)))
}
