// Command estimate prints what test/realnode/run.sh would cost on this machine
// now: the seconds on stdout (for CI's budget check), part by part on stderr,
// cold parts named. It builds and runs nothing.
//
//	go run ./test/realnode/cmd/estimate      # or: test/realnode/run.sh --estimate
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/agentkernel/kubectl-agentkernel/test/realnode"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	e, err := realnode.EstimateNow(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error: estimate the realnode tier:", err)
		os.Exit(1)
	}
	e.Write(os.Stderr)
	fmt.Println(e.Seconds())
}
