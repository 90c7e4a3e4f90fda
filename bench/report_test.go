package main

import (
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
