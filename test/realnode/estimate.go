package realnode

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// CI decides before it starts this tier whether its budget allows it, so the
// estimate must follow what is really cached at that moment: on a bare
// machine nearly everything is cold, on CI after the control-plane build only
// the kubelet link, the disk image and the tests are left.

// Part is one piece of the work test/realnode/run.sh would do now.
type Part struct {
	Name   string
	Cached bool
	// Cost is what the part takes when it is not cached; 0 when it is.
	Cost time.Duration
	// Basis says where Cost comes from: this machine's own measurement or
	// the default below.
	Basis string
}

// Estimate is the cost of test/realnode/run.sh on this machine now.
type Estimate struct {
	Parts  []Part
	Margin time.Duration
}

// Total is every part's cost plus the margin.
func (e *Estimate) Total() time.Duration {
	t := e.Margin
	for _, p := range e.Parts {
		t += p.Cost
	}
	return t
}

// Seconds is Total in whole seconds, as run.sh --estimate prints it.
func (e *Estimate) Seconds() int64 { return secs(e.Total()) }

// Cold names the parts that are not cached (the tests always run).
func (e *Estimate) Cold() []string {
	var cold []string
	for _, p := range e.Parts {
		if !p.Cached && p.Name != partTests {
			cold = append(cold, p.Name)
		}
	}
	return cold
}

// Write prints the estimate part by part.
func (e *Estimate) Write(w io.Writer) {
	var sum time.Duration
	for _, p := range e.Parts {
		sum += p.Cost
	}
	fmt.Fprintf(w, "realnode estimate: %ds = %ds of work + %ds margin (%d%% + %ds)\n",
		e.Seconds(), secs(sum), secs(e.Margin), marginPercent, secs(marginFixed))
	for _, p := range e.Parts {
		switch {
		case p.Cached:
			fmt.Fprintf(w, "  %-16s cached\n", p.Name)
		case p.Name == partTests:
			fmt.Fprintf(w, "  %-16s run    %5ds  %s\n", p.Name, secs(p.Cost), p.Basis)
		default:
			fmt.Fprintf(w, "  %-16s cold   %5ds  %s\n", p.Name, secs(p.Cost), p.Basis)
		}
	}
	if cold := e.Cold(); len(cold) > 0 {
		fmt.Fprintf(w, "  cold: %s\n", strings.Join(cold, " "))
	} else {
		fmt.Fprintf(w, "  cold: nothing (everything is cached; only the tests run)\n")
	}
}

func secs(d time.Duration) int64 { return int64(d.Round(time.Second) / time.Second) }

const (
	partControlPlane = "control plane"
	partHostPackages = "host-packages"
	partKubelet      = "kubelet"
	partTests        = "tests"

	// The margin covers what the measurements do not: a busier machine
	// than when they were taken, and a suite that grew since. 15 %: the
	// tests' part is already the largest of the newest passing runs
	// (measurementsUsed). With 25 % on top of that, the suite with the
	// agents' whole flow (67 min in CI, 2026-12-08) was refused by a CI
	// budget it fits with 17 min to spare.
	marginPercent = 15
	marginFixed   = time.Minute

	// measurementsUsed: the newest few measurements of a part, of which the
	// largest is taken (the newest ones match today's code; the largest
	// covers a busy machine).
	measurementsUsed = 3
)

// defaultCosts are measured on 2 busy cores under TCG (README.md, "Costs";
// CLUSTER-NOTES.md for the control plane). They apply until this machine has
// measured a part itself: timings.log for the image steps, the control
// plane's build-info.json, suite.log for the tests.
var defaultCosts = map[string]time.Duration{
	partControlPlane: 25 * time.Minute, // localcluster.Build, cold Go build cache
	partHostPackages: 2 * time.Minute,  // apt-get update + qemu, debootstrap, ...
	"kernel":         14 * time.Second,
	"initramfs":      1 * time.Second,
	"rootfs":         251 * time.Second, // debootstrap, network-bound
	"containerd":     6 * time.Minute,
	"knp":            586 * time.Second, // its own k8s.io v0.32 tree
	"pause":          5 * time.Second,
	"images":         5 * time.Second,
	"egress-image":   4 * time.Minute, // the plugin's binary; 230 s cold, 20-50 s after
	"csi-driver":     time.Minute,     // test/realnode/csi: 41 s with grpc already built
	// kubernetes-csi's provisioner, snapshotter and snapshot controller:
	// 2142 s cold at load average 13-21 (8.7 min of CPU), 2026-12-07.
	"csi-sidecars": 36 * time.Minute,
	partKubelet:    30 * time.Second, // a link once the control plane's build filled the Go cache
	// The agent presets' image and packages (issue 24), 2026-12-07: 49 s,
	// 96 s (network: 400 MB from the npm registry), 17 s, 2 s.
	"node-rootfs": 2 * time.Minute,
	"agent-npm":   3 * time.Minute,
	"agent-image": 30 * time.Second,
	"npm-mirror":  30 * time.Second,
	"agentmock":   30 * time.Second, // a small Go binary, like npm-mirror
	"disk":        60 * time.Second, // mkfs.ext4 -d; 10-35 s, once 213 s under heavy I/O
	// run.sh's go test: control plane up, boot, the suite. 34-39 min
	// without the agents' tests (wholeflow_test.go); those add about 20
	// min run alone (2026-12-07: four installs of a CLI, three
	// conversations), and run last, once CI's e2e tier beside them has
	// ended. With the 15 % margin this must stay under what CI has left
	// when the tier starts (about 82 of its 90 min).
	partTests: 60 * time.Minute,
}

// unknownStepCost stands in for a build step added to build.sh without a
// default here, until this machine has built it once.
const unknownStepCost = 5 * time.Minute

func defaultCost(name string) (time.Duration, string) {
	if d, ok := defaultCosts[name]; ok {
		return d, "default (README.md)"
	}
	return unknownStepCost, fmt.Sprintf("not measured here yet and no default (%ds assumed; add one to defaultCosts)", secs(unknownStepCost))
}

// estimateInputs is everything the estimate is made from.
type estimateInputs struct {
	// controlPlaneCached: localcluster.Built found the current build.
	controlPlaneCached bool
	// controlPlaneBuilt: seconds of the newest control-plane build on this
	// machine (any key), 0 if there is none.
	controlPlaneBuilt time.Duration
	// plan is build.sh --plan's output, in build order.
	plan []planStep
	// timings: every step build in timings.log, oldest first.
	timings map[string][]time.Duration
	// suite: passing run.sh test runs from suite.log, oldest first.
	suite []time.Duration
}

type planStep struct {
	name   string
	cached bool
}

func estimate(in estimateInputs) *Estimate {
	e := &Estimate{}
	type pick struct {
		which string
		of    func([]time.Duration) time.Duration
	}
	largest := pick{"largest", slices.Max[[]time.Duration]}
	smallest := pick{"smallest", slices.Min[[]time.Duration]}
	add := func(name string, cached bool, measured []time.Duration, p pick, file string) {
		part := Part{Name: name, Cached: cached}
		if !cached {
			part.Cost, part.Basis = defaultCost(name)
			switch recent := newest(measured, measurementsUsed); {
			case len(recent) == 1:
				part.Cost, part.Basis = recent[0], "measured here ("+file+")"
			case len(recent) > 1:
				part.Cost = p.of(recent)
				part.Basis = fmt.Sprintf("%s of the %d newest measured here (%s)", p.which, len(recent), file)
			}
		}
		e.Parts = append(e.Parts, part)
	}
	var cp []time.Duration
	if in.controlPlaneBuilt > 0 {
		cp = []time.Duration{in.controlPlaneBuilt}
	}
	add(partControlPlane, in.controlPlaneCached, cp, largest, "build-info.json")
	for _, s := range in.plan {
		p := largest
		if s.name == partKubelet {
			// After the control plane's build the kubelet only links; a
			// kubelet built before it compiled everything, which the
			// control-plane part above already counts.
			p = smallest
		}
		add(s.name, s.cached, in.timings[s.name], p, "timings.log")
	}
	add(partTests, false, in.suite, largest, SuiteLog)

	var sum time.Duration
	for _, p := range e.Parts {
		sum += p.Cost
	}
	e.Margin = sum*marginPercent/100 + marginFixed
	return e
}

func newest(d []time.Duration, n int) []time.Duration {
	if len(d) > n {
		return d[len(d)-n:]
	}
	return d
}

// EstimateNow looks at the caches of this machine: the control plane's build
// (localcluster), build.sh --plan, and the measurements in the realnode cache.
func EstimateNow(ctx context.Context) (*Estimate, error) {
	var in estimateInputs
	bins, err := localcluster.Built(ctx)
	if err != nil {
		return nil, err
	}
	in.controlPlaneCached = bins != nil
	if in.controlPlaneBuilt, err = newestControlPlaneBuild(); err != nil {
		return nil, err
	}
	if in.plan, err = buildPlan(ctx); err != nil {
		return nil, err
	}
	root, err := CacheRoot()
	if err != nil {
		return nil, err
	}
	if in.timings, err = readTimings(filepath.Join(root, "timings.log")); err != nil {
		return nil, err
	}
	key, err := SuiteKey()
	if err != nil {
		return nil, err
	}
	if in.suite, err = readSuiteLog(filepath.Join(root, SuiteLog), key); err != nil {
		return nil, err
	}
	return estimate(in), nil
}

// SuiteLog is the file in CacheRoot() where run.sh appends one line per test
// run: "TIME SECONDS exit=CODE tests=KEY" (KEY: SuiteKey).
const SuiteLog = "suite.log"

// CacheRoot is build.sh's cache: $AGENTKERNEL_REALNODE_CACHE, else
// ${XDG_CACHE_HOME:-~/.cache}/kubectl-agentkernel/realnode.
func CacheRoot() (string, error) {
	if d := os.Getenv("AGENTKERNEL_REALNODE_CACHE"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user cache directory (set XDG_CACHE_HOME or HOME): %w", err)
	}
	return filepath.Join(base, "kubectl-agentkernel", "realnode"), nil
}

func buildPlan(ctx context.Context) ([]planStep, error) {
	script, err := BuildScript()
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, "bash", script, "--plan").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("%s --plan: %w", script, err)
	}
	return parsePlan(string(out))
}

// parsePlan reads "plan STEP KEY cached|cold [detail]" lines.
func parsePlan(out string) ([]planStep, error) {
	var steps []planStep
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "plan" || (f[3] != "cached" && f[3] != "cold") {
			return nil, fmt.Errorf("build.sh --plan printed %q, want \"plan STEP KEY cached|cold\"", line)
		}
		steps = append(steps, planStep{name: f[1], cached: f[3] == "cached"})
	}
	if len(steps) == 0 {
		return nil, errors.New("build.sh --plan printed no steps")
	}
	return steps, nil
}

// readTimings reads build.sh's "TIME STEP KEY SECONDSs" lines; a missing
// file is a machine that never built a step.
func readTimings(file string) (map[string][]time.Duration, error) {
	t := map[string][]time.Duration{}
	err := eachLine(file, func(f []string) {
		if len(f) != 4 {
			return
		}
		if d, ok := seconds(strings.TrimSuffix(f[3], "s")); ok {
			t[f[1]] = append(t[f[1]], d)
		}
	})
	return t, err
}

// readSuiteLog keeps the passing runs of the tests key names: a failed run
// may have stopped early, and a run of another set of tests (or a line from
// before runs were keyed) measured something else.
func readSuiteLog(file, key string) ([]time.Duration, error) {
	var runs []time.Duration
	err := eachLine(file, func(f []string) {
		if len(f) != 4 || f[2] != "exit=0" || f[3] != "tests="+key {
			return
		}
		if d, ok := seconds(f[1]); ok {
			runs = append(runs, d)
		}
	})
	return runs, err
}

func eachLine(file string, fn func(fields []string)) error {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fn(strings.Fields(s.Text()))
	}
	return s.Err()
}

func seconds(s string) (time.Duration, bool) {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n * float64(time.Second)), true
}

// newestControlPlaneBuild is what the newest finished control-plane build on
// this machine took, by its build-info.json (0 if there is none).
func newestControlPlaneBuild() (time.Duration, error) {
	root, err := localcluster.CacheRoot()
	if err != nil {
		return 0, err
	}
	infos, err := filepath.Glob(filepath.Join(root, "*", "build-info.json"))
	if err != nil {
		return 0, err
	}
	var newestAt time.Time
	var took time.Duration
	for _, file := range infos {
		b, err := os.ReadFile(file)
		if err != nil {
			return 0, err
		}
		d, at, err := parseBuildInfo(b)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", file, err)
		}
		if at.After(newestAt) {
			newestAt, took = at, d
		}
	}
	return took, nil
}

// parseBuildInfo sums the per-binary seconds localcluster records.
func parseBuildInfo(b []byte) (time.Duration, time.Time, error) {
	var info struct {
		Seconds  map[string]string `json:"buildSeconds"`
		Finished time.Time         `json:"finished"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return 0, time.Time{}, err
	}
	var sum time.Duration
	for name, s := range info.Seconds {
		d, ok := seconds(s)
		if !ok {
			return 0, time.Time{}, fmt.Errorf("buildSeconds[%s] = %q is not a number of seconds", name, s)
		}
		sum += d
	}
	return sum, info.Finished, nil
}
