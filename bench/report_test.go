package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestQuantileIsARealSample(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := quantile(s, 0.5); got != 5 {
		t.Errorf("median of 1..10 = %v, want 5", got)
	}
	if got := quantile(s, 0.9); got != 9 {
		t.Errorf("p90 of 1..10 = %v, want 9", got)
	}
	if got := quantile([]float64{7}, 0.1); got != 7 {
		t.Errorf("p10 of one sample = %v, want it", got)
	}
}

func TestSummariseRatiosAndCounts(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	r := &runResult{
		s:       &Scenario{Name: "row"},
		ours:    []Sample{{Wall: ms(10), PeakRSS: 30 << 20, Done: 100, Of: 100}, {Wall: ms(30), PeakRSS: 30 << 20, Done: 99, Of: 100}, {Wall: ms(20), PeakRSS: 30 << 20, Done: 100, Of: 100}},
		kubectl: []Sample{{Wall: ms(40), PeakRSS: 60 << 20, Done: 100, Of: 100}, {Wall: ms(40), PeakRSS: 60 << 20, Done: 100, Of: 100}, {Wall: ms(40), PeakRSS: 60 << 20, Done: 100, Of: 100}},
	}
	got := summarise(r)
	if len(got.Metrics) != 3 {
		t.Fatalf("metrics %+v, want time, peak RSS, Running", got.Metrics)
	}
	if m := got.Metrics[0]; m.Ratio == nil || *m.Ratio != 0.5 {
		t.Errorf("time ratio %v, want 0.5 (median 20 ms / 40 ms)", m.Ratio)
	}
	if m := got.Metrics[1]; m.Ratio == nil || *m.Ratio != 0.5 {
		t.Errorf("RSS ratio %v, want 0.5", m.Ratio)
	}
	if m := got.Metrics[2]; m.Ratio != nil || m.Ours.Min != 99 {
		t.Errorf("Running %+v: want no ratio and the worst round, 99", m)
	}
	if o, _ := cell(got.Metrics[2], got.Metrics[2].Ours); o != "99/100" {
		t.Errorf("Running cell %q, want 99/100", o)
	}
}

func TestFormatTimes(t *testing.T) {
	m := Metric{Unit: "ms"}
	for v, want := range map[float64]string{2500: "2.50 s", 38: "38 ms", 0.3: "0.3 ms", 0.0023: "2.3 µs"} {
		if got := format(m, v); got != want {
			t.Errorf("format(%v ms) = %q, want %q", v, got, want)
		}
	}
}

func TestParseRealNode(t *testing.T) {
	log := "=== RUN   TestSandboxDefault\n" +
		"    sandbox_test.go:31: realnode-speed: plugin-create-running 12000ms\n" +
		"    sandbox_test.go:31: realnode-speed: plugin-create-running 14000ms\n" +
		"    sandbox_test.go:90: realnode-speed: plugin-exec-true 800ms\n"
	rn, err := parseRealNode(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if s := rn.Metrics["plugin-create-running"]; len(s.Samples) != 2 || s.Median != 12000 {
		t.Errorf("create: %+v", s)
	}
	if _, err := parseRealNode(strings.NewReader("x: realnode-speed: plugin-exec-true soon\n")); err == nil {
		t.Error("a malformed line was accepted")
	}
	if _, err := parseRealNode(strings.NewReader("PASS\n")); err == nil {
		t.Error("a log without speed lines was accepted")
	}
}

func TestReasonIsTheCommandsOwnError(t *testing.T) {
	for in, want := range map[string]string{
		"round 1: kubectl-agentkernel cp -n ns a:/x /tmp/y: exit status 1: error: the connection broke": "error: the connection broke",
		"E1201 v2.go:151] copying failed\nerror: reading from error stream: reset":                      "error: reading from error stream: reset",
		"prepare: namespace gone": "prepare: namespace gone",
	} {
		if got := reason(in); got != want {
			t.Errorf("reason(%q) = %q, want %q", in, got, want)
		}
	}
}

// A row with no kubectl equivalent is measured on one side only: the
// kubectl side is never run, its cells say so, and there is no ratio.
func TestRowWithoutKubectlSide(t *testing.T) {
	ran := 0
	s := &Scenario{Name: "one side", Note: "alone", Ours: Side{Label: "in process", Run: func(context.Context, *Env, int) (Sample, error) {
		ran++
		return Sample{Wall: time.Duration(ran) * time.Millisecond, Ops: 10}, nil
	}}}
	res, err := measure(context.Background(), &Env{}, s, 3, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ran != 4 || len(res.ours) != 3 || len(res.kubectl) != 0 || len(res.kubectlFailed) != 0 {
		t.Fatalf("ran %d, ours %d, kubectl %d (%v)", ran, len(res.ours), len(res.kubectl), res.kubectlFailed)
	}
	got := summarise(res)
	for _, m := range got.Metrics {
		if m.Ratio != nil {
			t.Errorf("%s has a ratio, %v", m.Name, *m.Ratio)
		}
		if k, k90 := cell(m, m.Kubectl); k != "—" || k90 != "—" {
			t.Errorf("%s: kubectl cells %q, %q, want —", m.Name, k, k90)
		}
		if o, _ := cell(m, m.Ours); o == "—" {
			t.Errorf("%s: our cell is empty", m.Name)
		}
	}
	var b strings.Builder
	if err := (&Report{Scenarios: []ScenarioResult{got}}).writeMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| one side | time per command (of 10) | 0.3 ms (0.4 ms) | — (—) |  |") {
		t.Errorf("markdown:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "- **one side**: in process; alone.\n") {
		t.Errorf("markdown's note:\n%s", b.String())
	}
}

func TestFoldNames(t *testing.T) {
	got := summariseRequests(foldNames([]string{
		"DELETE /api/v1/namespaces/ns/pods/agentkernel-a",
		"DELETE /api/v1/namespaces/ns/pods/agentkernel-b",
		"GET /api/v1/namespaces/ns/pods (watch)",
		"GET /api/v1/namespaces/pods/pods/x",
	}))
	want := []string{"DELETE /api/v1/namespaces/ns/pods/NAME ×2", "GET /api/v1/namespaces/ns/pods (watch)", "GET /api/v1/namespaces/pods/pods/NAME"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("folded %q, want %q", got, want)
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis, as /proc allows.
	stat := "4242 (kube (api) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 125 0 0 20 0 12 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil || got != 3750*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 3.75s (375 ticks)", got, err)
	}
	for _, bad := range []string{"", "4242 no parens", "4242 (x) S 1 2"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}
