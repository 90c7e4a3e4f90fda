package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// The one-shot row: what an agent run is, end to end. A sandbox is made,
// a 1 MiB repository goes in, a command works on it, the repository comes
// back out, the sandbox is deleted. The plugin does it in one process
// (`run`); plain kubectl needs six (create -f, wait, cp, exec, cp,
// delete --wait). agentkernel's published one-shot run (571 ms on k3d) is
// the anchor the issue gives.
//
// Each side is a list of command lines, built with Env's argv builders
// (subcommand + args -> the binary, the bench namespace, the args), run in
// order and timed as one sample.

// argvFunc builds a command line for one side (Env.ours, Env.kubectl).
type argvFunc func(subcommand string, args ...string) []string

// oneShotRow holds the row's inputs.
type oneShotRow struct {
	repo, out string
	// podYAML returns kubectl's Pod: the plugin's hardened sandbox Pod,
	// named name.
	podYAML func(name string) ([]byte, error)
	tmp     string
}

const (
	oneShotName = "run one-shot: create, cp 1 MiB in, exec, cp out, delete"
	// oneShotScript is the "agent": it reads the whole repository and
	// writes a file into it.
	oneShotScript = `cat $(find . -type f) | wc -c > bytes.txt`
	repoFiles     = 64
	repoFileSize  = 16 << 10
)

// newOneShotRow writes the 1 MiB repository (64 files of 16 KiB in 8
// directories) under tmp.
func newOneShotRow(tmp string, podYAML func(name string) ([]byte, error)) (*oneShotRow, error) {
	o := &oneShotRow{repo: filepath.Join(tmp, "oneshot-repo"), out: filepath.Join(tmp, "oneshot-out"), podYAML: podYAML, tmp: tmp}
	for i := 0; i < repoFiles; i++ {
		dir := filepath.Join(o.repo, fmt.Sprintf("pkg%d", i%8))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		line := []byte(fmt.Sprintf("// file %d of the bench repository\n", i))
		body := bytes.Repeat(line, repoFileSize/len(line)+1)[:repoFileSize]
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.go", i)), body, 0o644); err != nil {
			return nil, err
		}
	}
	return o, os.MkdirAll(o.out, 0o755)
}

// remote is a path of its own per side and round: on the simulated node
// every sandbox shares one /workspace.
func (o *oneShotRow) remote(side string, round int) string {
	return fmt.Sprintf("/workspace/oneshot-%s-%d", side, round)
}

// ours is the plugin's side: one `run`.
func (o *oneShotRow) ours(ours argvFunc, round int) [][]string {
	remote := o.remote("ours", round)
	return [][]string{ours("run", fmt.Sprintf("oneshot-%d", round), "-q", "--network", "open",
		"--copy-in", o.repo+":"+remote,
		"--copy-out", remote+":"+filepath.Join(o.out, fmt.Sprintf("ours-%d", round)),
		"-w", remote, "--", "sh", "-c", oneShotScript)}
}

// kubectl is plain kubectl's side; it writes the round's Pod file first.
func (o *oneShotRow) kubectl(kubectl argvFunc, round int) ([][]string, error) {
	name := fmt.Sprintf("oneshot-k-%d", round)
	pod, err := o.podYAML(name)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(o.tmp, name+".yaml")
	if err := os.WriteFile(file, pod, 0o644); err != nil {
		return nil, err
	}
	remote := o.remote("kubectl", round)
	return [][]string{
		kubectl("create", "-f", file),
		kubectl("wait", "--for=condition=Ready", "pod/"+name),
		kubectl("cp", o.repo, name+":"+remote),
		kubectl("exec", name, "--", "sh", "-c", `cd "$0" && `+oneShotScript, remote),
		kubectl("cp", name+":"+remote, filepath.Join(o.out, fmt.Sprintf("kubectl-%d", round))),
		kubectl("delete", "pod", name, "--wait"),
	}, nil
}

// check says whether a round's copy came back whole (the agent's file
// included): a side that skipped work would look fast.
func (o *oneShotRow) check(side string, round int) error {
	b, err := os.ReadFile(filepath.Join(o.out, fmt.Sprintf("%s-%d", side, round), "bytes.txt"))
	if err != nil {
		return fmt.Errorf("%s, round %d: the repository did not come back with the command's output: %w", side, round, err)
	}
	if want := fmt.Sprintf("%d\n", repoFiles*repoFileSize); string(bytes.TrimLeft(b, " ")) != want {
		return fmt.Errorf("%s, round %d: the command saw %q bytes of the repository, want %q", side, round, b, want)
	}
	return nil
}

// runRows is the one-shot row. Its repository is written once, under the
// bench's scratch directory, the first time the row runs.
func runRows() []*Scenario {
	var row *oneShotRow
	setup := func(ctx context.Context, e *Env) error {
		if err := needCluster(ctx, e); err != nil {
			return err
		}
		var err error
		row, err = newOneShotRow(e.Tmp, func(name string) ([]byte, error) {
			return e.kubectlPod(name, nil, "", "")
		})
		return err
	}
	side := func(label, name string, argvs func(e *Env, round int) ([][]string, error)) Side {
		return Side{
			Label: label,
			Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
				steps, err := argvs(e, round)
				if err != nil {
					return Sample{}, err
				}
				s, err := e.runAll(ctx, nil, steps...)
				if err != nil {
					return s, err
				}
				return s, row.check(name, round) // one small local file: no time to speak of
			},
		}
	}
	return []*Scenario{{
		Name:    oneShotName,
		Cluster: true,
		Setup:   setup,
		Ours: side("kubectl agentkernel run --copy-in --copy-out", "ours", func(e *Env, round int) ([][]string, error) {
			return row.ours(e.ours, round), nil
		}),
		Kubectl: side("kubectl create -f, wait, cp, exec, cp, delete --wait", "kubectl", func(e *Env, round int) ([][]string, error) {
			return row.kubectl(e.kubectl, round)
		}),
		Note: "a 1 MiB repository (64 files) in, a command that reads all of it and writes a file, the result out, the sandbox deleted; agentkernel's published one-shot run is 571 ms on k3d",
	}}
}
