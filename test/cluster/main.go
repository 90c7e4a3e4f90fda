// Command cluster builds and runs the local Kubernetes control plane that
// kubectl-agentkernel's e2e tests, benchmarks and demo run against.
//
//	go run ./test/cluster build                 # build or reuse the binaries; last line: their dir
//	go run ./test/cluster up [--dir D] [--no-kwok]
//	                                            # start detached; last line: export KUBECONFIG=...
//	go run ./test/cluster env [--dir D]         # print the exports again
//	go run ./test/cluster down [--dir D]        # stop what `up` started
//
// D defaults to ${XDG_RUNTIME_DIR:-/tmp}/kubectl-agentkernel-cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `usage:
  go run ./test/cluster build
  go run ./test/cluster up   [--dir D] [--no-kwok]
  go run ./test/cluster env  [--dir D]
  go run ./test/cluster down [--dir D]
D defaults to ${XDG_RUNTIME_DIR:-/tmp}/kubectl-agentkernel-cluster
`

func defaultDir() string {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = "/tmp"
	}
	return filepath.Join(base, "kubectl-agentkernel-cluster")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", defaultDir(), "state directory")
	noKwok := fs.Bool("no-kwok", false, "start only the control plane (no simulated node)")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}

	switch args[0] {
	case "build":
		b, err := localcluster.Build(ctx, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, b.Dir)
		return nil

	case "up":
		b, err := localcluster.Build(ctx, stderr)
		if err != nil {
			return err
		}
		c, err := localcluster.Up(ctx, b, localcluster.Options{Dir: *dir, Kwok: !*noKwok, Log: stderr, Detach: true})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "up: stop it with: go run ./test/cluster down --dir %s\n", c.Dir)
		printEnv(stdout, c)
		return nil

	case "env":
		c, err := localcluster.Attach(*dir)
		if err != nil {
			return err
		}
		if err := c.Running(); err != nil {
			fmt.Fprintln(stderr, "warning:", err)
		}
		printEnv(stdout, c)
		return nil

	case "down":
		c, err := localcluster.Attach(*dir)
		if err != nil {
			return err
		}
		if err := c.Down(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "down: stopped the cluster in %s (state kept there)\n", c.Dir)
		return nil

	default:
		fmt.Fprint(stderr, usage)
		return errUsage
	}
}

// printEnv prints shell lines to use the cluster; the KUBECONFIG export is
// the last line, so `eval "$(go run ./test/cluster env)"` or `| tail -1` work.
func printEnv(w io.Writer, c *localcluster.Cluster) {
	if c.Binaries != nil {
		fmt.Fprintf(w, "export AGENTKERNEL_E2E_KUBECTL=%s\n", shellQuote(c.Binaries.Kubectl))
	}
	fmt.Fprintf(w, "export AGENTKERNEL_E2E_CLUSTER_DIR=%s\n", shellQuote(c.Dir))
	fmt.Fprintf(w, "export KUBECONFIG=%s\n", shellQuote(c.AdminKubeconfig))
}

func shellQuote(s string) string {
	for _, r := range s {
		if !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
