package main

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

const (
	payloadSize          = 100 << 20 // one big file
	smallFiles, smallDir = 5000, 100 // a tree: smallFiles files, smallDir per directory
	smallSize            = 1 << 10
)

// cpRows: one big file and a tree of small ones, into the sandbox and out.
func cpRows() []*Scenario {
	in := func(what, id string, src func(e *Env) string, check func(ctx context.Context, e *Env, kubectlSide bool, dest string) error, rm string) *Scenario {
		dest := func(side string, round int) string { return fmt.Sprintf("/workspace/in-%s-%s-%d", id, side, round) }
		cleanup := func(kubectlSide bool, side string) func(context.Context, *Env, int) error {
			return func(ctx context.Context, e *Env, round int) error {
				if round == 0 {
					if err := check(ctx, e, kubectlSide, dest(side, round)); err != nil {
						return err
					}
				}
				_, err := e.inSandbox(ctx, kubectlSide, rm+" "+dest(side, round))
				return err
			}
		}
		return cpScenario("cp "+what+" in", needCpInputs, func(e *Env, pod, side string, round int) (string, string) {
			return src(e), pod + ":" + dest(side, round)
		}, cleanup)
	}
	// remote(side) is where needCpOutputs put the input: on the simulated
	// node every pod shares one /workspace, so each side has its own.
	out := func(what string, remote func(side string) string, files int, size int64) *Scenario {
		local := func(e *Env, side string, round int) string {
			return filepath.Join(e.Tmp, fmt.Sprintf("out-%s-%d", filepath.Base(remote(side)), round))
		}
		cleanup := func(side string) func(context.Context, *Env, int) error {
			return func(ctx context.Context, e *Env, round int) error {
				if err := checkLocal(local(e, side, round), files, size); err != nil {
					return err
				}
				return os.RemoveAll(local(e, side, round))
			}
		}
		return cpScenario("cp "+what+" out", needCpOutputs, func(e *Env, pod, side string, round int) (string, string) {
			return pod + ":" + remote(side), local(e, side, round)
		}, func(_ bool, side string) func(context.Context, *Env, int) error { return cleanup(side) })
	}
	const big, tree = "100 MiB file", "5,000 × 1 KiB files"
	return []*Scenario{
		in(big, "big", func(e *Env) string { return e.payload }, func(ctx context.Context, e *Env, k bool, dest string) error {
			return checkRemote(ctx, e, k, "wc -c < "+dest, payloadSize)
		}, "rm -f"),
		out(big, outBig, 1, payloadSize),
		in(tree, "tree", func(e *Env) string { return e.smallFiles }, func(ctx context.Context, e *Env, k bool, dest string) error {
			return checkRemote(ctx, e, k, "find "+dest+" -type f | wc -l", smallFiles)
		}, "rm -rf"),
		out(tree, outTree, smallFiles, smallFiles*smallSize),
	}
}

// cpScenario times `kubectl agentkernel cp` against `kubectl cp` of the
// same copy. paths gives a side's source and destination, the remote one
// qualified with pod (the warm sandbox, or kubectl's pod).
func cpScenario(name string, setup func(context.Context, *Env) error,
	paths func(e *Env, pod, side string, round int) (src, dst string),
	cleanup func(kubectlSide bool, side string) func(context.Context, *Env, int) error,
) *Scenario {
	sideOf := func(label string, kubectlSide bool, side string) Side {
		return Side{
			Label: label,
			Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
				pod, cmd := e.warmName, e.ours
				if kubectlSide {
					pod, cmd = e.kpodName, e.kubectl
				}
				src, dst := paths(e, pod, side, round)
				return e.run(ctx, nil, cmd("cp", src, dst)...)
			},
			Cleanup: cleanup(kubectlSide, side),
		}
	}
	return &Scenario{
		Name:    name,
		Cluster: true,
		Setup:   setup,
		Ours:    sideOf("kubectl agentkernel cp", false, "ours"),
		Kubectl: sideOf("kubectl cp", true, "kubectl"),
	}
}

func outBig(side string) string  { return "/workspace/out-src-" + side + ".bin" }
func outTree(side string) string { return "/workspace/out-src-tree-" + side }

// needCpInputs writes the local inputs: a 100 MiB file of random bytes (no
// stream along the way compresses, but be safe) and the tree.
func needCpInputs(ctx context.Context, e *Env) error {
	if err := needWarm(ctx, e); err != nil {
		return err
	}
	if e.payload != "" {
		return nil
	}
	rng := rand.NewChaCha8([32]byte{'a', 'g', 'e', 'n', 't'})
	payload := filepath.Join(e.Tmp, "payload.bin")
	if err := writeFileOnce(payload, payloadSize, func(b []byte) { _, _ = rng.Read(b) }); err != nil {
		return err
	}
	tree := filepath.Join(e.Tmp, "tree")
	for i := range smallFiles {
		dir := filepath.Join(tree, "d"+strconv.Itoa(i/smallDir))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := writeFileOnce(filepath.Join(dir, "f"+strconv.Itoa(i)), smallSize, func(b []byte) { _, _ = rng.Read(b) }); err != nil {
			return err
		}
	}
	e.payload, e.smallFiles = payload, tree
	return nil
}

// needCpOutputs puts the inputs into the sandbox and kubectl's pod once (not
// timed), for the rows that copy out.
func needCpOutputs(ctx context.Context, e *Env) error {
	if err := needCpInputs(ctx, e); err != nil {
		return err
	}
	if e.outputsIn {
		return nil
	}
	for _, c := range []struct {
		local  string
		remote func(side string) string
	}{{e.payload, outBig}, {e.smallFiles, outTree}} {
		if _, err := e.run(ctx, nil, e.ours("cp", c.local, e.warmName+":"+c.remote("ours"))...); err != nil {
			return err
		}
		if _, err := e.run(ctx, nil, e.kubectl("cp", c.local, e.kpodName+":"+c.remote("kubectl"))...); err != nil {
			return err
		}
	}
	e.outputsIn = true
	return nil
}

// checkRemote fails unless script prints want in the sandbox (or pod).
func checkRemote(ctx context.Context, e *Env, kubectlSide bool, script string, want int) error {
	got, err := e.inSandbox(ctx, kubectlSide, script)
	if err != nil {
		return err
	}
	if got != strconv.Itoa(want) {
		return fmt.Errorf("after the copy, %q printed %q, want %d", script, got, want)
	}
	return nil
}

// checkLocal fails unless path holds files regular files of size bytes in all.
func checkLocal(path string, files int, size int64) error {
	var n int
	var total int64
	err := filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n++
		total += info.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking the copy: %w", err)
	}
	if n != files || total != size {
		return fmt.Errorf("the copy at %s has %d files, %d bytes; want %d files, %d bytes", path, n, total, files, size)
	}
	return nil
}
