package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// roundLabel tells the scale rows' pods apart, per side and round.
const roundLabel = "agentkernel-bench-round"

// scaleRows: many sandboxes at once, the rows users compare tools by.
func scaleRows(n, procs int) []*Scenario {
	selector := func(side string, round int) string { return fmt.Sprintf("%s=%s-%d", roundLabel, side, round) }
	labelValue := func(side string, round int) string { return fmt.Sprintf("%s-%d", side, round) }
	oursCleanup := func(side string) func(context.Context, *Env, int) error {
		return func(ctx context.Context, e *Env, round int) error {
			_, err := e.run(ctx, nil, e.ours("delete", "-l", selector(side, round), "--timeout", "5m")...)
			return err
		}
	}
	kubectlCleanup := func(side string) func(context.Context, *Env, int) error {
		return func(ctx context.Context, e *Env, round int) error {
			return e.deleteKubectlPods(ctx, selector(side, round))
		}
	}
	// counted stops the clock, then counts the side's Running pods.
	counted := func(ctx context.Context, e *Env, s Sample, start time.Time, side string, round int) (Sample, error) {
		s.Wall = time.Since(start)
		running, _, err := e.countRunning(ctx, selector(side, round))
		s.Done, s.Of = running, e.ScaleN
		return s, err
	}
	return []*Scenario{
		{
			Name:      fmt.Sprintf("%d concurrent creates, one process", n),
			Cluster:   true,
			MaxRounds: 3,
			Setup:     needCluster,
			Ours: Side{
				Label: "pkg/sandbox.Create ×N in goroutines, one client",
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					start := time.Now()
					var wg sync.WaitGroup
					var mu sync.Mutex
					var firstErr error
					for i := range e.ScaleN {
						wg.Go(func() {
							spec := sandbox.NewSpec(fmt.Sprintf("s%d-%d", round, i), e.Namespace)
							spec.Network = sandbox.NetworkOpen
							spec.Labels = map[string]string{roundLabel: labelValue("s", round)}
							err := setResources(&spec, e.ScaleCPU, e.ScaleMem)
							if err == nil {
								_, err = sandbox.Create(ctx, e.Clientset, &spec, sandbox.CreateOptions{Wait: true, Timeout: e.CreateTimeout})
							}
							if err != nil {
								mu.Lock()
								firstErr = firstOf(firstErr, err)
								mu.Unlock()
							}
						})
					}
					wg.Wait()
					if firstErr != nil {
						fmt.Fprintf(os.Stderr, "bench: a create in one process failed: %v\n", firstErr)
					}
					return counted(ctx, e, Sample{}, start, "s", round)
				},
				Cleanup: oursCleanup("s"),
			},
			Kubectl: Side{
				Label: "kubectl create -f (N pods in one file) + kubectl wait -l",
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					s, start, waitErr, err := e.kubectlCreateAndWait(ctx, fmt.Sprintf("ks%d-", round), e.ScaleN,
						map[string]string{roundLabel: labelValue("ks", round)}, selector("ks", round))
					if err != nil {
						return s, err
					}
					if waitErr != nil {
						fmt.Fprintf(os.Stderr, "bench: %v\n", waitErr)
					}
					return counted(ctx, e, s, start, "ks", round)
				},
				Cleanup: kubectlCleanup("ks"),
			},
			Note: "how many of N reach Running, and the wall time until the last does",
		},
		{
			Name:      fmt.Sprintf("%d concurrent creates, %d processes", n, procs),
			Cluster:   true,
			MaxRounds: 3,
			Setup:     needCluster,
			Ours: Side{
				Label: fmt.Sprintf("%d workers, each creating N/%d in turn with kubectl agentkernel create", procs, procs),
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return workers(ctx, e, round, func(name string) (Sample, error) {
						return e.run(ctx, nil, e.ours("create", name, "--network", "open", "--cpu", e.ScaleCPU, "--memory", e.ScaleMem,
							"--label", roundLabel+"="+labelValue("p", round), "--timeout", e.CreateTimeout.String())...)
					}, func(s Sample, start time.Time) (Sample, error) { return counted(ctx, e, s, start, "p", round) })
				},
				Cleanup: oursCleanup("p"),
			},
			Kubectl: Side{
				Label: fmt.Sprintf("%d workers, each running kubectl create -f + kubectl wait N/%d times", procs, procs),
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return workers(ctx, e, round, func(name string) (Sample, error) {
						pod, err := e.kubectlPod("k"+name, map[string]string{roundLabel: labelValue("kp", round)}, e.ScaleCPU, e.ScaleMem)
						if err != nil {
							return Sample{}, err
						}
						s, err := e.run(ctx, pod, e.kubectl("create", "-f", "-")...)
						if err != nil {
							return s, err
						}
						w, err := e.run(ctx, nil, e.kubectl("wait", "--for=condition=Ready", "pod/k"+name, "--timeout", e.CreateTimeout.String())...)
						return s.then(w), err
					}, func(s Sample, start time.Time) (Sample, error) { return counted(ctx, e, s, start, "kp", round) })
				},
				Cleanup: kubectlCleanup("kp"),
			},
			Note: "many agents starting at once, each its own process",
		},
	}
}

// workers runs e.ScaleN creates from e.ScaleProcs concurrent workers, each
// making its share one after the other. Failures are counted (by done), not
// fatal: how many make it is what the row reports.
func workers(ctx context.Context, e *Env, round int, create func(name string) (Sample, error), done func(Sample, time.Time) (Sample, error)) (Sample, error) {
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var peak Sample
	var firstErr error
	for w := range e.ScaleProcs {
		wg.Go(func() {
			for i := w; i < e.ScaleN; i += e.ScaleProcs {
				s, err := create(fmt.Sprintf("p%d-%d", round, i))
				mu.Lock()
				peak.PeakRSS = max(peak.PeakRSS, s.PeakRSS)
				if err != nil {
					firstErr = firstOf(firstErr, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "bench: a create failed: %v\n", firstErr)
	}
	return done(peak, start)
}

// firstOf keeps the first error.
func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
