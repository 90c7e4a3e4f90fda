// Package pool holds the pool command family (pool create, list, scale,
// delete), as kubectl keeps a family such as rollout in a package of its
// own. Claiming from a pool (create --pool, run --pool) is the top-level
// commands' and lives in pkg/cmd/internal/cli.
package pool

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"
)

var poolLong = templates.LongDesc(`
	Pools keep sandboxes warm, so that create --pool (and run --pool) hands one out
	at once instead of waiting for scheduling, the image and the container to start.

	A pool needs nothing installed: its definition is a PodTemplate named
	agentkernel-pool-NAME, its members are ordinary sandboxes (same hardening, same
	NetworkPolicy, created behind the same gate), and a claim is one write to a
	member's labels that carries the resourceVersion it read — so of two claims of one
	member, from any process on any machine, exactly one wins. The claimant makes the
	member's replacement, and every pool command tops the pool up.

	Per-claim environment and secrets (--env, --secret-env) reach a claimed sandbox over
	exec stdin, into a memory-backed file that every later exec reads: warm sandboxes
	take secrets without a cold start.`)

var poolExample = templates.Examples(`
	# Keep ten sandboxes for a coding agent warm
	kubectl agentkernel pool create agents --size 10 --image node:22 --profile moderate --memory 4Gi

	# Claim one, with a secret of its own; with none ready, it is created cold
	ANTHROPIC_API_KEY=... kubectl agentkernel create task-1 --pool agents --secret-env ANTHROPIC_API_KEY --ttl 2h

	# Ready, starting and claimed members, with the reason of any that cannot start
	kubectl agentkernel pool list`)

// NewCmdPool returns the pool command and its subcommands.
func NewCmdPool(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "pool (create|list|scale|delete)",
		DisableFlagsInUseLine: true,
		Short:                 "Keep sandboxes warm for instant claims",
		Long:                  poolLong,
		Example:               poolExample,
		Args:                  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("pool needs a subcommand: create, list, scale or delete (kubectl agentkernel pool --help)")
		},
	}
	cmd.AddCommand(
		NewCmdPoolCreate(f, streams),
		NewCmdPoolList(f, streams),
		NewCmdPoolScale(f, streams),
		NewCmdPoolDelete(f, streams),
	)
	return cmd
}

// poolProgress tells, on stderr, why a pool is taking long.
func poolProgress(errOut interface{ Write([]byte) (int, error) }, name string) func(string) {
	return func(state string) {
		fmt.Fprintf(errOut, "waiting for pool/%s: %s\n", name, state)
	}
}
