// Command bench times kubectl agentkernel against plain kubectl doing the
// same work, in the same run, against the same cluster, and prints medians
// and ratios (ours / kubectl; below 1 is faster).
//
//	go run ./bench [-n 10] [-kubeconfig FILE]
//
// Without -kubeconfig it builds (cached) and starts the local control plane
// of test/cluster with its simulated node. Nothing here asserts on time.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

func main() {
	n := flag.Int("n", 10, "iterations of each scenario")
	kubeconfig := flag.String("kubeconfig", "", "cluster to use (default: start the local test cluster)")
	kubectl := flag.String("kubectl", "", "kubectl binary (default: the local test cluster's v1.37.2 kubectl, or kubectl on PATH)")
	flag.BoolVar(&mcpOnly, "mcp-only", false, "only the MCP exec row (bench/mcp_scenario.go)")
	flag.Parse()
	if err := run(*n, *kubeconfig, *kubectl); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

type runner struct {
	plugin, kubectl, kubeconfig, ns string
}

func (r *runner) cmd(stdin []byte, bin string, args ...string) error {
	c := exec.Command(bin, append([]string{"--kubeconfig", r.kubeconfig}, args...)...)
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var errOut bytes.Buffer
	c.Stderr = &errOut
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), err, errOut.String())
	}
	return nil
}

var mcpOnly bool

func run(n int, kubeconfig, kubectl string) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "agentkernel-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	r := &runner{plugin: filepath.Join(tmp, "kubectl-agentkernel"), kubectl: kubectl, kubeconfig: kubeconfig, ns: "bench"}
	if out, err := exec.Command("go", "build", "-o", r.plugin, "./cmd/kubectl-agentkernel").CombinedOutput(); err != nil {
		return fmt.Errorf("building the plugin: %v: %s", err, out)
	}
	if kubeconfig == "" {
		bins, err := localcluster.Build(ctx, os.Stderr)
		if err != nil {
			return err
		}
		c, err := localcluster.Up(ctx, bins, localcluster.Options{Kwok: true, Log: os.Stderr})
		if err != nil {
			return err
		}
		defer func() { _ = c.Down() }()
		r.kubeconfig = c.AdminKubeconfig
		if r.kubectl == "" {
			r.kubectl = bins.Kubectl
		}
		fmt.Println("cluster: local control plane v1.37.2, simulated node (kwok)")
	}
	if r.kubectl == "" {
		r.kubectl = "kubectl"
	}
	if err := r.cmd(nil, r.kubectl, "create", "namespace", r.ns); err != nil {
		return err
	}
	defer func() { _ = r.cmd(nil, r.kubectl, "delete", "namespace", r.ns, "--wait=false") }()
	time.Sleep(2 * time.Second) // the namespace's default ServiceAccount

	// The same hardened pod, for kubectl to create by hand.
	spec := sandbox.NewSpec("kpod", r.ns)
	spec.Network = sandbox.NetworkOpen // kubectl gets no policy to create; be fair
	podYAML, err := yaml.Marshal(spec.Pod())
	if err != nil {
		return err
	}
	podFile := filepath.Join(tmp, "pod.yaml")
	if err := os.WriteFile(podFile, podYAML, 0o644); err != nil {
		return err
	}
	payload := filepath.Join(tmp, "payload.bin")
	if err := os.WriteFile(payload, bytes.Repeat([]byte("agentkernel!"), 10<<20/12), 0o644); err != nil {
		return err
	}

	type scenario struct {
		name          string
		ours, kubectl func(i int) error
	}
	var ws = func(i int) string { return fmt.Sprintf("/workspace/bench-%d", i) }
	// A long-lived sandbox and pod for the exec and cp scenarios.
	if err := r.cmd(nil, r.plugin, "create", "warm", "-n", r.ns, "--network", "open"); err != nil {
		return err
	}
	if err := r.cmd(nil, r.kubectl, "create", "-f", podFile); err != nil {
		return err
	}
	if err := r.cmd(nil, r.kubectl, "wait", "-n", r.ns, "--for=condition=Ready", "pod/agentkernel-kpod"); err != nil {
		return err
	}
	scenarios := []scenario{
		{"create + wait ready",
			func(i int) error {
				return r.cmd(nil, r.plugin, "create", fmt.Sprintf("c%d", i), "-n", r.ns, "--network", "open")
			},
			func(i int) error {
				pod := strings.ReplaceAll(string(podYAML), "agentkernel-kpod", fmt.Sprintf("k%d", i))
				if err := r.cmd([]byte(pod), r.kubectl, "create", "-f", "-"); err != nil {
					return err
				}
				return r.cmd(nil, r.kubectl, "wait", "-n", r.ns, "--for=condition=Ready", fmt.Sprintf("pod/k%d", i))
			}},
		{"exec true",
			func(int) error { return r.cmd(nil, r.plugin, "exec", "warm", "-n", r.ns, "--", "true") },
			func(int) error { return r.cmd(nil, r.kubectl, "exec", "-n", r.ns, "agentkernel-kpod", "--", "true") }},
		{"cp 10 MiB in",
			func(i int) error { return r.cmd(nil, r.plugin, "cp", payload, "warm:"+ws(i)+"-ours.bin", "-n", r.ns) },
			func(i int) error {
				return r.cmd(nil, r.kubectl, "cp", payload, r.ns+"/agentkernel-kpod:"+ws(i)+"-kubectl.bin")
			}},
		{"cp 10 MiB out",
			func(i int) error {
				return r.cmd(nil, r.plugin, "cp", "warm:"+ws(i)+"-ours.bin", filepath.Join(tmp, "out-ours"), "-n", r.ns)
			},
			func(i int) error {
				return r.cmd(nil, r.kubectl, "cp", r.ns+"/agentkernel-kpod:"+ws(i)+"-kubectl.bin", filepath.Join(tmp, "out-kubectl"))
			}},
		{"delete + wait gone",
			func(i int) error { return r.cmd(nil, r.plugin, "delete", fmt.Sprintf("c%d", i), "-n", r.ns) },
			func(i int) error {
				return r.cmd(nil, r.kubectl, "delete", "pod", "-n", r.ns, fmt.Sprintf("k%d", i), "--wait")
			}},
	}

	if mcpOnly {
		scenarios = nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\tagentkernel (median)\tkubectl (median)\tratio\n")
	for _, s := range scenarios {
		var ours, theirs []time.Duration
		for i := 0; i < n; i++ {
			// Alternate, so drift on a busy machine hits both alike.
			for _, side := range []struct {
				f   func(int) error
				out *[]time.Duration
			}{{s.ours, &ours}, {s.kubectl, &theirs}} {
				start := time.Now()
				if err := side.f(i); err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				*side.out = append(*side.out, time.Since(start))
			}
		}
		mo, mk := median(ours), median(theirs)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\n", s.name, mo.Round(time.Millisecond), mk.Round(time.Millisecond), float64(mo)/float64(mk))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// The MCP row (bench/mcp_scenario.go).
	b, err := startMCP(ctx, r.plugin, r.kubeconfig, r.ns)
	if err != nil {
		return err
	}
	defer b.Close()
	return mcpExecRates(ctx, b, 20, n,
		func() error { return r.cmd(nil, r.plugin, "exec", "warm", "-n", r.ns, "--", "true") },
		func() error { return r.cmd(nil, r.kubectl, "exec", "-n", r.ns, "agentkernel-kpod", "--", "true") })
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
