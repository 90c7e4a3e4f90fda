package realnode

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEstimateFollowsTheCacheAndTheMeasurements(t *testing.T) {
	s := time.Second
	allSteps := func(cached ...string) []planStep {
		var plan []planStep
		for _, name := range []string{"host-packages", "kernel", "initramfs", "rootfs", "containerd", "knp", "pause", "images", "kubelet", "disk"} {
			plan = append(plan, planStep{name: name, cached: strings.Contains(" "+strings.Join(cached, " ")+" ", " "+name+" ")})
		}
		return plan
	}
	withMargin := func(work time.Duration) time.Duration { return work + work*15/100 + time.Minute }

	tests := []struct {
		name      string
		in        estimateInputs
		wantTotal time.Duration
		wantCold  string
		wantLines []string
	}{{
		name: "bare machine: every part cold, the defaults",
		in:   estimateInputs{plan: allSteps()},
		wantTotal: withMargin(25*time.Minute + 2*time.Minute + 14*s + 1*s + 251*s + 6*time.Minute + 586*s +
			5*s + 5*s + 30*s + 60*s + 60*time.Minute),
		wantCold:  "control plane host-packages kernel initramfs rootfs containerd knp pause images kubelet disk",
		wantLines: []string{"control plane    cold    1500s  default (README.md)", "tests            run     3600s  default (README.md)"},
	}, {
		name: "CI after the control plane: kubelet link, disk and tests, from this machine's measurements",
		in: estimateInputs{
			controlPlaneCached: true,
			controlPlaneBuilt:  1400 * s,
			plan:               allSteps("host-packages", "kernel", "initramfs", "rootfs", "containerd", "knp", "pause", "images"),
			timings: map[string][]time.Duration{
				// a kubelet built before the control plane (a full compile)
				// and then two links: the link is what is left to do
				"kubelet": {660 * s, 16 * s, 20 * s},
				// only the newest three count; the largest of them
				"disk":       {400 * s, 35 * s, 213 * s, 12 * s},
				"containerd": {999 * s}, // cached: its measurement is not used
			},
			suite: []time.Duration{300 * s, 412 * s, 380 * s},
		},
		wantTotal: withMargin(16*s + 213*s + 412*s),
		wantCold:  "kubelet disk",
		wantLines: []string{
			"control plane    cached",
			"kubelet          cold      16s  smallest of the 3 newest measured here (timings.log)",
			"disk             cold     213s  largest of the 3 newest measured here (timings.log)",
			"tests            run      412s  largest of the 3 newest measured here (suite.log)",
		},
	}, {
		name: "control plane cold, measured once on this machine",
		in: estimateInputs{
			controlPlaneBuilt: 1200 * s,
			plan:              allSteps("host-packages", "kernel", "initramfs", "rootfs", "containerd", "knp", "pause", "images", "kubelet", "disk"),
			suite:             []time.Duration{200 * s},
		},
		wantTotal: withMargin(1200*s + 200*s),
		wantCold:  "control plane",
		wantLines: []string{"control plane    cold    1200s  measured here (build-info.json)"},
	}, {
		name: "a step added to build.sh without a default: assumed until measured",
		in: estimateInputs{
			controlPlaneCached: true,
			plan:               []planStep{{name: "proxy-image"}, {name: "mcp-inspector"}},
			timings:            map[string][]time.Duration{"mcp-inspector": {40 * s}},
			suite:              []time.Duration{300 * s},
		},
		wantTotal: withMargin(5*time.Minute + 40*s + 300*s),
		wantCold:  "proxy-image mcp-inspector",
		wantLines: []string{"proxy-image      cold     300s  not measured here yet and no default (300s assumed; add one to defaultCosts)"},
	}, {
		name:      "everything cached: only the tests",
		in:        estimateInputs{controlPlaneCached: true, plan: allSteps("host-packages", "kernel", "initramfs", "rootfs", "containerd", "knp", "pause", "images", "kubelet", "disk")},
		wantTotal: withMargin(60 * time.Minute),
		wantLines: []string{"cold: nothing (everything is cached; only the tests run)"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := estimate(tt.in)
			if got := e.Total(); got != tt.wantTotal {
				t.Errorf("total %s, want %s", got, tt.wantTotal)
			}
			if got := strings.Join(e.Cold(), " "); got != tt.wantCold {
				t.Errorf("cold parts %q, want %q", got, tt.wantCold)
			}
			var out bytes.Buffer
			e.Write(&out)
			if !strings.HasPrefix(out.String(), "realnode estimate: "+strconv.FormatInt(e.Seconds(), 10)+"s = ") {
				t.Errorf("first line does not give the total of %ds:\n%s", e.Seconds(), out.String())
			}
			for _, want := range tt.wantLines {
				if !strings.Contains(out.String(), want) {
					t.Errorf("no line %q in:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestParsePlan(t *testing.T) {
	steps, err := parsePlan("plan host-packages - cold qemu-utils,socat\nplan kernel 794f cached\nplan disk 7b4d cold\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []planStep{{"host-packages", false}, {"kernel", true}, {"disk", false}}
	if len(steps) != len(want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	for i := range want {
		if steps[i] != want[i] {
			t.Errorf("step %d: %v, want %v", i, steps[i], want[i])
		}
	}
	for _, bad := range []string{"", "realnode-build: kernel: cached", "plan kernel 794f maybe"} {
		if _, err := parsePlan(bad); err == nil {
			t.Errorf("parsePlan(%q) accepted it", bad)
		}
	}
}

func TestReadMeasurements(t *testing.T) {
	dir := t.TempDir()
	timings := filepath.Join(dir, "timings.log")
	writeTestFile(t, timings, "2026-12-01T15:25:45Z kernel 794f1703af031a04 12s\n"+
		"garbage\n"+
		"2026-12-01T15:29:03Z rootfs f5b1872afa71872b 197s\n"+
		"2026-12-02T10:00:00Z kernel 794f1703af031a04 9s\n")
	got, err := readTimings(timings)
	if err != nil {
		t.Fatal(err)
	}
	if k := got["kernel"]; len(k) != 2 || k[0] != 12*time.Second || k[1] != 9*time.Second {
		t.Errorf("kernel timings %v, want [12s 9s] in file order", k)
	}
	if r := got["rootfs"]; len(r) != 1 || r[0] != 197*time.Second {
		t.Errorf("rootfs timings %v, want [197s]", r)
	}

	suite := filepath.Join(dir, SuiteLog)
	writeTestFile(t, suite, "2026-12-01T15:00:00Z 4647 exit=0\n"+ // before runs were keyed
		"2026-12-01T16:00:00Z 400 exit=0 tests=abc\n2026-12-01T17:00:00Z 90 exit=1 tests=abc\n"+
		"2026-12-01T17:30:00Z 4647 exit=0 tests=def\n"+ // another set of tests
		"2026-12-01T18:00:00Z 420 exit=0 tests=abc\n")
	runs, err := readSuiteLog(suite, "abc")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0] != 400*time.Second || runs[1] != 420*time.Second {
		t.Errorf("suite runs %v, want the passing ones of tests=abc [6m40s 7m0s]", runs)
	}

	// A machine that never built anything has no files: no measurements.
	if got, err := readTimings(filepath.Join(dir, "none")); err != nil || len(got) != 0 {
		t.Errorf("missing timings.log: %v, %v", got, err)
	}
}

func TestParseBuildInfo(t *testing.T) {
	took, at, err := parseBuildInfo([]byte(`{"key":"k","buildSeconds":{"etcd":"100","kube-apiserver":"900","kwok":"180"},"finished":"2026-12-01T16:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if took != 1180*time.Second || at.Format(time.RFC3339) != "2026-12-01T16:00:00Z" {
		t.Errorf("got %s finished %s, want 19m40s finished 2026-12-01T16:00:00Z", took, at)
	}
	if _, _, err := parseBuildInfo([]byte(`{"buildSeconds":{"etcd":"soon"}}`)); err == nil {
		t.Error("accepted a non-number of seconds")
	}
}

func writeTestFile(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// build.sh --plan is what the estimate trusts for the image steps: it must
// see a finished step as cached, and write nothing itself.
func TestBuildPlanSeesTheCache(t *testing.T) {
	for _, tool := range []string{"bash", "apt-cache", "dpkg-query", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("build.sh needs %s (a Debian host): %v", tool, err)
		}
	}
	cache := t.TempDir()
	t.Setenv("AGENTKERNEL_REALNODE_CACHE", cache)
	plan := func() map[string]string {
		t.Helper()
		script, err := BuildScript()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(t.Context(), "bash", script, "--plan").Output()
		if err != nil {
			t.Fatalf("build.sh --plan: %v", err)
		}
		state := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 {
				t.Fatalf("build.sh --plan printed %q", line)
			}
			state[f[1]] = f[2] + " " + f[3]
		}
		return state
	}
	before := plan()
	var order []string
	for _, step := range []string{"kernel", "initramfs", "rootfs", "containerd", "knp", "pause", "images", "csi-driver", "csi-sidecars", "kubelet", "disk"} {
		st, ok := before[step]
		if !ok || !strings.HasSuffix(st, " cold") {
			t.Fatalf("empty cache: step %s is %q, want cold; plan: %v", step, st, before)
		}
		order = append(order, step)
	}
	if entries, err := os.ReadDir(cache); err != nil || len(entries) != 0 {
		t.Fatalf("--plan wrote into the cache: %v %v", entries, err)
	}

	key, _, _ := strings.Cut(before["containerd"], " ")
	if err := os.MkdirAll(filepath.Join(cache, "containerd-"+key), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(cache, "containerd-"+key, ".done"), "")
	after := plan()
	for _, step := range order {
		want := before[step]
		if step == "containerd" {
			want = key + " cached"
		}
		if after[step] != want {
			t.Errorf("after building containerd: %s is %q, want %q", step, after[step], want)
		}
	}
}
