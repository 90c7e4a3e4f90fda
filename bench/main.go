// Command bench times kubectl agentkernel against plain kubectl doing the
// same work, side by side in one run against the same cluster: the two sides
// alternate round by round, and the table shows medians, p90 and the ratio
// ours / kubectl (below 1: the plugin is faster or smaller). Nothing here
// asserts on time. See bench/README.md, or go run ./bench -help.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	flag.BoolVar(&o.requests, "requests", false, "instead of timing, run each command once through a recording proxy and print the API requests of each side")
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
	rounds, warmup        int
	run                   string
	list, markdown        bool
	requests              bool
	kubeconfig, kubectl   string
	plugin, jsonOut, from string
	realnode, readme      string
	scaleN, scaleProcs    int
	scaleCPU, scaleMem    string
	qps                   float32
	burst                 int
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
		ScaleN: o.scaleN, ScaleProcs: o.scaleProcs, ScaleCPU: o.scaleCPU, ScaleMem: o.scaleMem,
		ClientQPS: o.qps, ClientBurst: o.burst, CreateTimeout: 5 * time.Minute,
	}
	report := &Report{Date: time.Now().UTC(), Machine: machine(), ClientQPS: o.qps, ClientBurst: o.burst, Rounds: o.rounds, RealNode: realnode}

	if e.Plugin, report.Plugin, err = o.buildPlugin(ctx, tmp); err != nil {
		return err
	}
	if e.timeproc, err = goBuild(ctx, tmp, "./bench/internal/timeproc"); err != nil {
		return err
	}
	if e.Kubectl, err = o.findKubectl(ctx); err != nil {
		return err
	}
	if report.Kubectl, err = describeKubectl(ctx, e.Kubectl); err != nil {
		return err
	}
	// kubectl finds the plugin on PATH for `kubectl agentkernel`.
	e.childEnv = append(withoutEnv(os.Environ(), "KUBECONFIG", "PATH"), "PATH="+filepath.Dir(e.Plugin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	var down func()
	e.startCluster = func(ctx context.Context) error {
		bins, err := localcluster.Build(ctx, os.Stderr)
		if err != nil {
			return err
		}
		c, err := localcluster.Up(ctx, bins, localcluster.Options{Kwok: true, Log: os.Stderr})
		if err != nil {
			return err
		}
		down = func() { _ = c.Down() }
		e.Kubeconfig = c.AdminKubeconfig
		return nil
	}
	defer func() {
		e.dropNamespace(context.Background())
		if down != nil {
			down()
		}
	}()

	if o.requests {
		return countRequests(ctx, e, os.Stdout)
	}
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
	return o.print(report)
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

// releaseFlags are .goreleaser.yaml's: what users install.
var releaseFlags = []string{"-trimpath", "-ldflags", "-s -w"}

// buildPlugin builds the plugin as the release does, or describes -plugin.
func (o *options) buildPlugin(ctx context.Context, tmp string) (string, Binary, error) {
	// Under its plugin name in a directory of its own, which goes first on
	// PATH, so that `kubectl agentkernel` finds this one.
	bin := filepath.Join(tmp, "bin", "kubectl-agentkernel")
	build := "as given (-plugin)"
	if o.plugin != "" {
		given, err := filepath.Abs(o.plugin)
		if err != nil {
			return "", Binary{}, err
		}
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			return "", Binary{}, err
		}
		if err := os.Symlink(given, bin); err != nil {
			return "", Binary{}, err
		}
	} else {
		args := append(append([]string{"build"}, releaseFlags...), "-o", bin, "./cmd/kubectl-agentkernel")
		c := exec.CommandContext(ctx, "go", args...)
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			return "", Binary{}, fmt.Errorf("building the plugin (run the bench from the repository root): %v: %s", err, out)
		}
		build = runtime.Version() + " CGO_ENABLED=0 -trimpath -ldflags='-s -w' (as .goreleaser.yaml)"
	}
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "", Binary{}, fmt.Errorf("%s version: %w", bin, err)
	}
	b := Binary{Path: o.plugin, Version: strings.TrimSpace(string(out)), Build: build, Size: fileSize(bin)}
	if o.plugin == "" {
		b.Path = "built from " + gitDescribe(ctx)
	}
	return bin, b, nil
}

// goBuild builds a helper of the bench into dir.
func goBuild(ctx context.Context, dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	c := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s (run the bench from the repository root): %v: %s", pkg, err, out)
	}
	return bin, nil
}

// findKubectl picks the kubectl to compare with.
func (o *options) findKubectl(ctx context.Context) (string, error) {
	if o.kubectl != "" {
		return exec.LookPath(o.kubectl)
	}
	fmt.Fprintln(os.Stderr, "bench: kubectl v1.37.2 as released (built once, cached)")
	k, err := localcluster.ReleaseKubectl(ctx, os.Stderr)
	if err == nil {
		return k, nil
	}
	fmt.Fprintf(os.Stderr, "bench: cannot build kubectl (%v); using kubectl on PATH\n", err)
	return exec.LookPath("kubectl")
}

func describeKubectl(ctx context.Context, kubectl string) (Binary, error) {
	out, err := exec.CommandContext(ctx, kubectl, "version", "--client", "-o", "json").Output()
	if err != nil {
		return Binary{}, fmt.Errorf("%s version --client: %w", kubectl, err)
	}
	var v struct {
		ClientVersion struct {
			GitVersion string `json:"gitVersion"`
			GoVersion  string `json:"goVersion"`
		} `json:"clientVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return Binary{}, fmt.Errorf("%s version --client -o json: %w", kubectl, err)
	}
	return Binary{Path: kubectl, Version: v.ClientVersion.GitVersion, Build: v.ClientVersion.GoVersion + " " + linkage(kubectl), Size: fileSize(kubectl)}, nil
}

// linkage says whether a binary is static: a dynamically linked Go binary
// that links the plugin package (kustomize does) exports every symbol and
// starts bigger, so it matters for the memory rows.
func linkage(bin string) string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "CGO_ENABLED=") {
			return f[1]
		}
	}
	return ""
}

func describeCluster(ctx context.Context, e *Env, local bool) string {
	v, err := e.Clientset.Discovery().ServerVersion()
	if err != nil {
		return "unknown: " + err.Error()
	}
	nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	kind := "?"
	if err == nil {
		simulated := 0
		for _, n := range nodes.Items {
			if n.Annotations["kwok.x-k8s.io/node"] == "fake" {
				simulated++
			}
		}
		kind = fmt.Sprintf("%d node(s), %d simulated (kwok)", len(nodes.Items), simulated)
	}
	where := "from -kubeconfig"
	if local {
		where = "the local test control plane on this machine"
	}
	return fmt.Sprintf("Kubernetes %s, %s, %s", v.GitVersion, kind, where)
}

// machine describes this computer.
func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	var uts syscall.Utsname
	if syscall.Uname(&uts) == nil {
		m.Kernel = utsString(uts.Release[:])
	}
	m.CPU = firstField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseFloat(strings.TrimSuffix(firstField("/proc/meminfo", "MemTotal"), " kB"), 64); err == nil {
		m.MemoryGiB = kb / (1 << 20)
	}
	m.LoadAvg = loadAvg()
	return m
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

func utsString(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

// firstField returns the value of the first "key: value" line of a /proc file.
func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func gitDescribe(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "this checkout"
	}
	return "commit " + strings.TrimSpace(string(out))
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
