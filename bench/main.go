// Command bench times kubectl agentkernel against plain kubectl doing the
// same work, side by side in one run against the same cluster: the two sides
// alternate round by round, and the table shows medians, p90 and the ratio
// ours / kubectl (below 1: the plugin is faster or smaller). Nothing here
// asserts on time. See bench/README.md, or go run ./bench -help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/clientrate"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

const usage = `go run ./bench [flags]

Times kubectl agentkernel against plain kubectl doing the same work, in one
run, interleaved round by round: medians, p90 and ratios (ours / kubectl).

Against the local test cluster (default): builds and starts the control plane
of test/cluster with its simulated node (kwok), and compares with kubectl
v1.37.2 built as Kubernetes releases it (static, CGO_ENABLED=0).

Against any cluster:

    go run ./bench -kubeconfig ~/.kube/config [-kubectl $(command -v kubectl)]

It works in a namespace of its own (agentkernel-bench-*, Pod Security
"restricted"), deletes it at the end, and needs room for -scale sandboxes of
-scale-cpu / -scale-memory each. The plugin is built as the release is
(CGO_ENABLED=0 -trimpath -ldflags '-s -w') unless -plugin names a binary.

Examples:

    go run ./bench -run start-up -n 30          # no cluster needed
    go run ./bench -run 'exec|cp' -json out.json
    go run ./bench -from out.json -markdown     # the README's table again

Flags:
`

func main() {
	var o options
	flag.IntVar(&o.rounds, "n", 10, "timed rounds per row (the scale rows do at most 3)")
	flag.IntVar(&o.warmup, "warmup", 1, "untimed rounds first (page cache, kubectl's discovery cache, the scheduler)")
	flag.StringVar(&o.run, "run", ".", "only rows whose name matches this regular expression")
	flag.BoolVar(&o.list, "list", false, "list the rows and exit")
	flag.BoolVar(&o.requests, "requests", false, "instead of timing, run each command once through a recording proxy and print the API requests of each side (with -thousand also list, claim, gc and delete --all among that many)")
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "cluster to use (default: start the local test cluster)")
	flag.StringVar(&o.kubectl, "kubectl", "", "kubectl binary (default: v1.37.2 built as released, or kubectl on PATH outside the repository)")
	flag.StringVar(&o.plugin, "plugin", "", "kubectl-agentkernel binary (default: build it as the release does)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results to this JSON file")
	flag.BoolVar(&o.markdown, "markdown", false, "print the table as markdown (the README's Speed section)")
	flag.StringVar(&o.readme, "readme", "", "write the markdown table into this file between its speed:begin and speed:end markers (README.md)")
	flag.StringVar(&o.from, "from", "", "print the table of an earlier -json file instead of measuring")
	flag.StringVar(&o.realnode, "realnode", "", "add the real-kubelet times from this `go test -v ./test/realnode` log")
	flag.IntVar(&o.scaleN, "scale", 100, "sandboxes in the concurrent-create rows")
	flag.IntVar(&o.scaleProcs, "scale-procs", 20, "processes in the many-process concurrent-create row")
	flag.StringVar(&o.scaleCPU, "scale-cpu", "100m", "CPU of each sandbox in the scale rows (the simulated node has 64)")
	flag.StringVar(&o.scaleMem, "scale-memory", "128Mi", "memory of each sandbox in the scale rows")
	flag.StringVar(&o.sandboxCPU, "cpu", "", "CPU of the other rows' sandboxes and kubectl's pods (default: the plugin's)")
	flag.StringVar(&o.sandboxMem, "memory", "", "memory of the other rows' sandboxes and kubectl's pods (default: the plugin's)")
	flag.IntVar(&o.thousand, "thousand", 0, "also the rows that list, delete and gc this many sandboxes at once, make and claim a pool of a fifth of them from 50 clients, and look up the egress proxy's grants among them (0: not; each round makes them first, for minutes)")
	flag.IntVar(&o.nodes, "nodes", 0, "simulated nodes to add to the local test cluster beside its own (the scale rows of issue #27 use 50)")
	qps := flag.Float64("qps", float64(clientrate.QPS), "client QPS of the in-process rows (negative: no limit; the plugin's own setting is the default; client-go's is 5)")
	flag.IntVar(&o.burst, "burst", clientrate.Burst, "client burst of the in-process rows (client-go's default is 10)")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	o.qps = float32(*qps)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := o.main(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: error:", err)
		os.Exit(1)
	}
}

type options struct {
	rounds, warmup         int
	run                    string
	list, markdown         bool
	requests               bool
	kubeconfig, kubectl    string
	plugin, jsonOut, from  string
	realnode, readme       string
	scaleN, scaleProcs     int
	scaleCPU, scaleMem     string
	sandboxCPU, sandboxMem string
	thousand, nodes        int
	qps                    float32
	burst                  int
}

// allScenarios is every row, in the table's order.
func allScenarios(o *options) []*Scenario {
	var all []*Scenario
	for _, rows := range [][]*Scenario{
		startupRows(),
		lifecycleRows(),
		execRows(),
		mcpRows(), // bench/mcp_scenario.go
		cpRows(),
		scaleRows(o.scaleN, o.scaleProcs),
		runRows(),
		poolRows(o.scaleN, o.scaleProcs),
		warmAgentRows(),             // bench/rows_warmagent.go
		thousandRows(o.thousand),    // bench/rows_thousand.go; only with -thousand
		thousandOpsRows(o.thousand), // bench/rows_thousand_ops.go; likewise
		mcpLimitRows(o.thousand),    // bench/rows_mcp_limit.go; likewise
		persistRows(),
		serveRows(),  // bench/rows_serve.go
		injectRows(), // bench/rows_inject.go: the egress proxy's key route, no cluster
		peerRows(),   // bench/rows_peer.go: agent-sandbox beside us
	} {
		all = append(all, rows...)
	}
	return all
}

func (o *options) main(ctx context.Context) error {
	var realnode *RealNode
	if o.realnode != "" {
		var err error
		if realnode, err = readRealNode(o.realnode); err != nil {
			return err
		}
	}
	if o.from != "" {
		r, err := readReport(o.from)
		if err != nil {
			return err
		}
		if realnode != nil {
			r.RealNode = realnode
		}
		return o.print(r)
	}
	selected, err := selectScenarios(allScenarios(o), o.run)
	if err != nil {
		return err
	}
	if o.list {
		for _, s := range selected {
			fmt.Println(s.Name)
		}
		return nil
	}
	if o.rounds < 1 || o.scaleN < 1 || o.scaleProcs < 1 {
		return fmt.Errorf("-n, -scale and -scale-procs must be at least 1")
	}

	if o.kubeconfig != "" {
		if o.kubeconfig, err = filepath.Abs(o.kubeconfig); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "agentkernel-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	e := &Env{
		Tmp: tmp, Kubeconfig: o.kubeconfig,
		ScaleN: o.scaleN, ScaleProcs: o.scaleProcs, Thousand: o.thousand, ScaleCPU: o.scaleCPU, ScaleMem: o.scaleMem,
		SandboxCPU: o.sandboxCPU, SandboxMem: o.sandboxMem,
		ClientQPS: o.qps, ClientBurst: o.burst, CreateTimeout: 5 * time.Minute,
	}
	report := &Report{Date: time.Now().UTC(), Machine: machine(), ClientQPS: o.qps, ClientBurst: o.burst, Rounds: o.rounds, RealNode: realnode}

	if err := o.binaries(ctx, e, report); err != nil {
		return err
	}
	var down func()
	e.startCluster = func(ctx context.Context) error {
		bins, err := localcluster.Build(ctx, os.Stderr)
		if err != nil {
			return err
		}
		c, err := localcluster.Up(ctx, bins, localcluster.Options{Kwok: true, Log: os.Stderr, Profiling: os.Getenv("BENCH_APISERVER_PROFILE") != ""})
		if err != nil {
			return err
		}
		down = func() { _ = c.Down() }
		e.Kubeconfig, e.components = c.AdminKubeconfig, c.Components()
		return addNodes(ctx, c, o.nodes)
	}
	defer func() {
		stopSDKBench() // before its namespace and cluster go
		stopInjectBench()
		stopPeer()
		e.dropNamespace(context.Background())
		if down != nil {
			down()
		}
	}()

	if o.requests {
		return countRequests(ctx, e, os.Stdout)
	}
	if err := o.measureAll(ctx, e, report, selected); err != nil {
		return err
	}
	return o.print(report)
}

// measureAll measures the selected rows into report, starting the cluster
// for the first row that needs one.
func (o *options) measureAll(ctx context.Context, e *Env, report *Report, selected []*Scenario) error {
	progress := func(s string) { fmt.Fprintln(os.Stderr, "bench:", s) }
	for _, s := range selected {
		if s.Cluster {
			if err := needCluster(ctx, e); err != nil {
				return err
			}
			if report.Cluster == "" {
				report.Cluster = describeCluster(ctx, e, o.kubeconfig == "")
			}
		}
		res, err := measure(ctx, e, s, o.rounds, o.warmup, progress)
		if errors.Is(err, errSkipRow) {
			progress(fmt.Sprintf("SKIPPED %s: %v", s.Name, err))
			continue
		}
		if err != nil {
			return err
		}
		report.Scenarios = append(report.Scenarios, summarise(res))
		if o.jsonOut != "" { // as we go: a long run that dies keeps what it measured
			if err := report.writeJSON(o.jsonOut); err != nil {
				return err
			}
		}
	}
	report.Machine.LoadAvgEnd = loadAvg()
	if o.jsonOut != "" {
		if err := report.writeJSON(o.jsonOut); err != nil {
			return err
		}
	}
	return nil
}

func (o *options) print(r *Report) error {
	if o.readme != "" {
		return r.writeIntoReadme(o.readme)
	}
	if o.markdown {
		return r.writeMarkdown(os.Stdout)
	}
	return r.writeTable(os.Stdout)
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}
