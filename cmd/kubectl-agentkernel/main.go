// Command kubectl-agentkernel is the kubectl plugin `kubectl agentkernel`:
// hardened, disposable sandbox Pods for AI coding agents.
package main

import (
	"context"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // cloud auth providers (exec, oidc, …)

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd"
)

func main() {
	ctx, stop := cmd.WithSignals(context.Background())
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	code := cmd.Execute(ctx, streams, os.Args[1:])
	stop()
	os.Exit(code)
}
