// Command estimate prints what test/realnode/run.sh would cost on this machine
// now: the seconds on stdout (for CI's budget check), part by part on stderr,
// cold parts named. It builds and runs nothing.
//
//	go run ./test/realnode/cmd/estimate      # or: test/realnode/run.sh --estimate
//	go run ./test/realnode/cmd/estimate -suite-key   # the key run.sh writes in suite.log
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/agentkernel/kubectl-agentkernel/test/realnode"
)

func main() {
	suiteKey := flag.Bool("suite-key", false, "print the key of this tree's set of real-node tests (suite.log's tests=) and exit")
	flag.Parse()
	if *suiteKey {
		key, err := realnode.SuiteKey()
		if err != nil {
			fmt.Fprintln(os.Stderr, "error: the real-node suite's key:", err)
			os.Exit(1)
		}
		fmt.Println(key)
		return
	}
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
