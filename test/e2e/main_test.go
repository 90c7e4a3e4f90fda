// Package e2e runs the real kubectl-agentkernel binary against a real
// Kubernetes API server.
//
// By default it builds (cached) and starts the local control plane of
// test/cluster, with kwok as a simulated node, and stops it afterwards.
// With E2E_KUBECONFIG it runs unchanged against that cluster instead (a
// kind cluster on a laptop, say), skipping only what needs the simulated
// node. Each test works in a namespace of its own and deletes it.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// env is what every test needs; set up once by TestMain.
var env struct {
	binary     string // the plugin, freshly built
	kubeconfig string
	limited    string // kubeconfig of a user with no RBAC ("" on external clusters)
	kubectl    string
	cs         kubernetes.Interface
	cluster    *localcluster.Cluster // nil on an external cluster
	simulated  bool                  // the node is kwok: commands run on this host
	skipReason string
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		env.skipReason = "e2e tests need a cluster; skipped with -short"
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()

	tmp, err := os.MkdirTemp("", "agentkernel-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	env.binary = filepath.Join(tmp, "kubectl-agentkernel")
	build := exec.CommandContext(ctx, "go", "build", "-o", env.binary, "../../cmd/kubectl-agentkernel")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the plugin:", err)
		return 1
	}

	if kc := os.Getenv("E2E_KUBECONFIG"); kc != "" {
		env.kubeconfig = kc
		env.kubectl = "kubectl"
	} else {
		bins, err := localcluster.Build(ctx, os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "building the test cluster:", err)
			return 1
		}
		c, err := localcluster.Up(ctx, bins, localcluster.Options{Kwok: true, Log: os.Stderr})
		if err != nil {
			fmt.Fprintln(os.Stderr, "starting the test cluster:", err)
			return 1
		}
		env.cluster = c
		env.kubeconfig = c.AdminKubeconfig
		env.limited = c.LimitedKubeconfig
		env.kubectl = bins.Kubectl
		defer func() {
			if err := c.Down(); err != nil {
				fmt.Fprintln(os.Stderr, "stopping the test cluster:", err)
			}
		}()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if env.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	nodes, err := env.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "listing nodes:", err)
		return 1
	}
	for _, n := range nodes.Items {
		if n.Annotations["kwok.x-k8s.io/node"] == "fake" {
			env.simulated = true
		}
	}
	fmt.Fprintf(os.Stderr, "e2e: %d node(s), simulated=%v\n", len(nodes.Items), env.simulated)
	code := m.Run()
	if env.cluster != nil {
		// Leave nothing behind: every test's namespace is gone before the
		// control plane stops.
		waitNamespacesGone(ctx)
	}
	return code
}
