package main

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"
)

// A Scenario is one row of the table: the same work done by the plugin and
// by plain kubectl, measured in alternating rounds of the same run.
//
// To add a row, write a function returning scenarios (see rows_*.go) and
// list it in allScenarios. Most rows are two commands:
//
//	{Name: "exec true", Cluster: true, Setup: needWarm,
//		Ours:    cmdSide("kubectl agentkernel exec", func(e *Env, r int) []string { return e.ours("exec", e.warm, "--", "true") }),
//		Kubectl: cmdSide("kubectl exec", func(e *Env, r int) []string { return e.kubectl("exec", e.kpod, "--", "true") })}
type Scenario struct {
	// Name is the row; -run matches it.
	Name string
	// Cluster: the row needs a cluster (the local one is started only if a
	// selected row does).
	Cluster bool
	// MaxRounds caps -n for rows that are expensive (the scale rows); 0: -n.
	MaxRounds int
	// Setup runs once before the first round; not timed.
	Setup func(ctx context.Context, e *Env) error
	// Ours is the plugin's side, Kubectl plain kubectl's. A row with no
	// kubectl equivalent leaves Kubectl empty (no Run): the table shows the
	// plugin's absolute figures and no ratio.
	Ours, Kubectl Side
	// Done runs once after the last round; not timed.
	Done func(ctx context.Context, e *Env) error
	// Note explains what the row compares, for the JSON and the markdown.
	Note string
}

// A Side is one half of a row.
type Side struct {
	// What runs, in a few words ("kubectl create -f + kubectl wait").
	Label string
	// Prepare and Cleanup run before and after each timed Run; not timed.
	Prepare, Cleanup func(ctx context.Context, e *Env, round int) error
	// Run does the work once and reports what it measured.
	Run func(ctx context.Context, e *Env, round int) (Sample, error)
}

// A Sample is what one Run measured.
type Sample struct {
	Wall time.Duration
	// PeakRSS is the largest maximum resident set size (wait4's
	// ru_maxrss) of the processes Run started, in bytes; 0: not measured
	// (the work ran in this process).
	PeakRSS int64
	// Ops is how many operations Wall covers (0 means 1): the table shows
	// time per operation and operations per second.
	Ops int
	// Done of Of finished (e.g. pods Running of pods created); Of 0: not
	// a counted row.
	Done, Of int
}

// then adds b's measurements to a: wall times add up, RSS is the larger.
func (a Sample) then(b Sample) Sample {
	a.Wall += b.Wall
	a.PeakRSS = max(a.PeakRSS, b.PeakRSS)
	return a
}

// runResult is every sample of one scenario, and the rounds that failed.
type runResult struct {
	s                         *Scenario
	ours, kubectl             []Sample
	oursFailed, kubectlFailed []string
}

// selectScenarios returns the scenarios whose name matches pattern.
func selectScenarios(all []*Scenario, pattern string) ([]*Scenario, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("-run %q: %w", pattern, err)
	}
	var out []*Scenario
	for _, s := range all {
		if re.MatchString(s.Name) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-run %q matches no row; list them with -list", pattern)
	}
	return out, nil
}

// measure runs s: warm-up rounds first (not recorded: page cache, kubectl's
// discovery cache, the scheduler's first pod), then rounds in which the two
// sides alternate which goes first, so that drift on a busy machine hits
// both alike.
func measure(ctx context.Context, e *Env, s *Scenario, rounds, warmup int, progress func(string)) (*runResult, error) {
	if s.MaxRounds > 0 {
		rounds = min(rounds, s.MaxRounds)
		warmup = min(warmup, 1)
	}
	if s.Setup != nil {
		if err := s.Setup(ctx, e); err != nil {
			return nil, fmt.Errorf("%s: setup: %w", s.Name, err)
		}
	}
	res := &runResult{s: s}
	sides := []struct {
		name   string
		side   *Side
		out    *[]Sample
		failed *[]string
	}{{"agentkernel", &s.Ours, &res.ours, &res.oursFailed}, {"kubectl", &s.Kubectl, &res.kubectl, &res.kubectlFailed}}
	for round := 0; round < warmup+rounds; round++ {
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			side := sides[i]
			if side.side.Run == nil {
				continue
			}
			if progress != nil {
				kind := "round"
				if round < warmup {
					kind = "warm-up"
				}
				progress(fmt.Sprintf("%s: %s %d, %s", s.Name, kind, round, side.name))
			}
			sample, err := runSide(ctx, e, side.side, round)
			switch {
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case err != nil:
				// A failed round is reported with the row, never
				// dropped, and does not end the run.
				msg := fmt.Sprintf("round %d: %v", round, err)
				if progress != nil {
					progress(fmt.Sprintf("%s: %s failed: %s", s.Name, side.name, msg))
				}
				*side.failed = append(*side.failed, msg)
			case round >= warmup:
				*side.out = append(*side.out, sample)
			}
		}
	}
	if s.Done != nil {
		if err := s.Done(ctx, e); err != nil {
			return nil, fmt.Errorf("%s: done: %w", s.Name, err)
		}
	}
	return res, nil
}

func runSide(ctx context.Context, e *Env, side *Side, round int) (Sample, error) {
	if side.Prepare != nil {
		if err := side.Prepare(ctx, e, round); err != nil {
			return Sample{}, fmt.Errorf("prepare: %w", err)
		}
	}
	sample, err := side.Run(ctx, e, round)
	if err != nil {
		return sample, err
	}
	if side.Cleanup != nil {
		if err := side.Cleanup(ctx, e, round); err != nil {
			return sample, fmt.Errorf("cleanup: %w", err)
		}
	}
	return sample, nil
}

// Stat summarises one metric of one side.
type Stat struct {
	Median  float64   `json:"median"`
	P90     float64   `json:"p90"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
}

func stat(v []float64) Stat {
	if len(v) == 0 {
		return Stat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return Stat{Median: quantile(s, 0.5), P90: quantile(s, 0.9), Min: s[0], Max: s[len(s)-1], Samples: v}
}

// quantile of sorted s by the nearest-rank method: with 10 samples the
// median is the 5th and p90 the 9th, values that were really measured.
func quantile(s []float64, q float64) float64 {
	rank := int(math.Ceil(q * float64(len(s))))
	return s[max(rank, 1)-1]
}
