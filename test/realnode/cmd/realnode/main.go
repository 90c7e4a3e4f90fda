// Command realnode boots the realnode guest against a running local control
// plane and keeps it up until interrupted, for poking at it by hand:
//
//	go run ./test/cluster up --no-kwok --dir /tmp/c
//	go run ./test/realnode/cmd/realnode --cluster-dir /tmp/c [--network-policy]
//	KUBECONFIG=/tmp/c/admin.kubeconfig kubectl get nodes
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
	"github.com/agentkernel/kubectl-agentkernel/test/realnode"
)

func main() {
	dir := flag.String("cluster-dir", "", "state directory of a cluster started with: go run ./test/cluster up --no-kwok --dir D")
	netpol := flag.Bool("network-policy", true, "run kube-network-policies in the guest")
	name := flag.String("name", "realnode", "node name")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "usage: realnode --cluster-dir D [--network-policy=false] [--name N]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := localcluster.Attach(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	n, err := realnode.Boot(ctx, c, realnode.Options{NodeName: *name, NetworkPolicy: *netpol, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "realnode: %s is Ready; logs in %s; Ctrl-C stops it\n", n.Name, n.Dir)
	select {
	case <-ctx.Done():
	case <-n.Exited():
		fmt.Fprintln(os.Stderr, "realnode: the guest stopped by itself\n"+n.Diagnostics())
	}
	if err := n.Shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
