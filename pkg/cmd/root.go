// Package cmd holds the root command and the top-level commands, one per
// file, each in kubectl's Options pattern: Complete reads flags and builds
// clients, Validate checks without I/O, Run does the work and writes only to
// the IOStreams. Command families have packages of their own (pool/,
// egress/), as kubectl's do; what the commands share is in internal/cli.
package cmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	// Before anything calls kubectl's i18n.T: no translation catalog to load.
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/pool"
	_ "github.com/agentkernel/kubectl-agentkernel/pkg/english"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

var rootLong = templates.LongDesc(`
	Give every AI coding agent its own hardened, disposable sandbox Pod.

	Sandboxes are ordinary Pods labelled agentkernel/managed-by=agentkernel.
	They run as a non-root user with no capabilities, a RuntimeDefault seccomp profile
	and no service-account token, so a namespace enforcing Pod Security "restricted"
	admits them.`)

var rootExample = templates.Examples(`
	# Create a sandbox, put a repository in, run an agent, take the results out
	kubectl agentkernel create demo
	kubectl agentkernel cp ./my-repo demo:/workspace/
	kubectl agentkernel exec -it demo -- sh
	kubectl agentkernel cp demo:/workspace/my-repo/out ./out
	kubectl agentkernel delete demo`)

// NewCmdRoot builds the whole command tree around one set of kubeconfig flags.
func NewCmdRoot(streams genericiooptions.IOStreams) *cobra.Command {
	// The domain records the plugin's version on what it makes; it is told
	// the version rather than importing it.
	sandbox.Version = version.Get().Version
	cmd := &cobra.Command{
		Use:     "kubectl-agentkernel",
		Short:   "Hardened, disposable sandbox Pods for AI coding agents",
		Long:    rootLong,
		Example: rootExample,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl agentkernel",
		},
		SilenceErrors: true, // Execute prints the error once, kubectl-style.
		SilenceUsage:  true,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)

	configFlags := newConfigFlags()
	configFlags.AddFlags(cmd.PersistentFlags())
	// Without the MatchVersion wrapper kubectl's exec/attach fail with
	// "GroupVersion is required when initializing a RESTClient".
	f := cmdutil.NewFactory(cmdutil.NewMatchVersionFlags(configFlags))

	cmd.AddCommand(
		NewCmdCreate(f, streams),
		NewCmdRun(f, streams),
		NewCmdExec(f, streams),
		NewCmdCp(f, streams),
		NewCmdList(f, streams),
		NewCmdUsage(f, streams),
		NewCmdDelete(f, streams),
		NewCmdSuspend(f, streams),
		NewCmdResume(f, streams),
		NewCmdSnapshot(f, streams),
		NewCmdAttach(f, streams),
		NewCmdShell(f, streams),
		NewCmdLogs(f, streams),
		NewCmdPortForward(f, streams),
		NewCmdAgents(streams),
		pool.NewCmdPool(f, streams),
		NewCmdGC(f, streams),
		NewCmdMCP(f, streams),
		NewCmdServe(f, streams),
		NewCmdVersion(streams),
		NewCmdRBAC(f, streams),
		NewCmdDoctor(f, streams),
		NewCmdCompletion(streams),
		egress.NewCmdEgress(f, streams),
		egress.NewCmdEgressProxy(f, streams),
	)
	cli.SpeakFlags(cmd)
	return cmd
}

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, streams genericiooptions.IOStreams, args []string) int {
	quietRuntimeErrors()
	cmd := NewCmdRoot(streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		// The sandboxed command's own status: pass it through untouched.
		return exit.Code
	}
	fmt.Fprintln(streams.ErrOut, "error: "+err.Error())
	if code, ok := cli.ExitCodeFor(ctx); ok {
		return code // interrupted: 130 for SIGINT, 143 for SIGTERM, as a shell reports them
	}
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode() // e.g. run's 125: the plugin failed before the command ran
	}
	return 1
}

// ExitError carries the exit status of a command that ran in a sandbox.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("command terminated with exit code %d", e.Code)
}

// WithSignals is the context main runs the command line under: it ends on
// SIGINT or SIGTERM, and Execute turns that into a shell's exit status.
// It is here, not only in the internal package, because main calls it.
func WithSignals(parent context.Context) (ctx context.Context, stop func()) {
	return cli.WithSignals(parent)
}
