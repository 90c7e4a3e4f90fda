package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// PoolClaimFlags are --pool and --pool-wait: every command that makes a
// sandbox (create, run) takes them, and claims through acquire.
type PoolClaimFlags struct {
	Pool string
	Wait bool
}

// AddFlags registers the flags on cmd; --pool completes the names of the
// pools in the namespace.
func (f *PoolClaimFlags) AddFlags(cmd *cobra.Command, factory cmdutil.Factory) {
	cmd.Flags().StringVar(&f.Pool, "pool", f.Pool, "Claim a warm sandbox from this pool (kubectl agentkernel pool create); with none ready, create it cold from the pool's definition")
	cmd.Flags().BoolVar(&f.Wait, "pool-wait", f.Wait, "With --pool: wait (up to --timeout) for a warm sandbox instead of creating one cold")
	_ = cmd.RegisterFlagCompletionFunc("pool", CompletePoolNames(factory))
}

// Validate checks the flags without I/O.
func (f *PoolClaimFlags) Validate() error {
	if f.Pool == "" {
		if f.Wait {
			return fmt.Errorf("--pool-wait needs --pool POOL")
		}
		return nil
	}
	return pool.ValidatePoolName(f.Pool)
}

// ClaimMatch sorts the sandbox flags given on cmd: those that shape a
// sandbox come from the pool, so giving one means insisting on the pool's
// value (pool.ClaimFields); the claim's own (pool.PerClaimFields) are
// applied to the member it takes; any other is refused rather than
// silently ignored — including flags added to SandboxFlags after this was
// written.
func ClaimMatch(cmd *cobra.Command) ([]string, error) {
	probe := &cobra.Command{}
	NewSandboxFlags().AddFlags(probe)
	var match []string
	var refused []string
	probe.Flags().VisitAll(func(fl *pflag.Flag) {
		if !cmd.Flags().Changed(fl.Name) {
			return
		}
		switch {
		case slices.Contains(pool.ClaimFields, fieldOfFlag(fl.Name)):
			match = append(match, fieldOfFlag(fl.Name))
		case slices.Contains(pool.PerClaimFields, fieldOfFlag(fl.Name)), slices.Contains(claimNeutral, fl.Name):
		default:
			refused = append(refused, "--"+fl.Name)
		}
	})
	if len(refused) > 0 {
		sort.Strings(refused)
		return nil, fmt.Errorf("%s cannot be used with --pool: a pool's sandboxes are made before they are claimed; put it in the pool's definition (kubectl agentkernel pool create), or create the sandbox without --pool",
			strings.Join(refused, ", "))
	}
	return match, nil
}

// claimNeutral are sandbox flags that shape nothing themselves:
// --agents-file only says where --agent's preset is read from;
// --inject-keys: the pool decides which keys its members have injected.
var claimNeutral = []string{"agents-file", "inject-keys"}

// Acquire claims the sandbox spec from the pool, or creates it cold; the
// caller says what happened (AcquiredHow).
func (c *Clients) Acquire(ctx context.Context, spec *sandbox.Spec, secretValues map[string]string, match []string, pf PoolClaimFlags, create sandbox.CreateOptions) (*pool.Acquired, error) {
	create.SecretValues = secretValues
	a, err := pool.Acquire(ctx, c.claimClientset(), spec, pool.AcquireOptions{
		Pool:               pf.Pool,
		Match:              match,
		WaitForMember:      pf.Wait,
		Exec:               c.ExecIn,
		RefillInBackground: true, // the caller says what it got first, then waits (FinishClaim)
		CreateOptions:      create,
	})
	if err != nil {
		return nil, c.Explain(err, spec.Namespace)
	}
	return a, nil
}

// FinishClaim waits for the claimed member's replacement, which is made
// while the caller already uses its sandbox: a process must not end before
// it, or the pool stays a member short until a pool command tops it up.
func FinishClaim(a *pool.Acquired, errOut io.Writer) {
	if err := a.WaitRefill(); err != nil {
		fmt.Fprintf(errOut, "warning: %v\n", FlagWordsError(err))
	}
}

// claimClientset is the clientset a claim uses: the command's, speaking
// protobuf. A claim lists its pool's members, whole Pods (about 7 KiB each
// in JSON), and with many members and many claimants that list is most of
// what the API server and the client spend; protobuf is several times
// cheaper to encode and decode. The connection pool is shared (client-go
// caches transports by their TLS configuration). A fake clientset (tests)
// is used as it is.
func (c *Clients) claimClientset() kubernetes.Interface {
	if _, real := c.Clientset.(*kubernetes.Clientset); !real || c.Config == nil || c.Config.ContentType != "" {
		return c.Clientset
	}
	cfg := restclient.CopyConfig(c.Config)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return c.Clientset
	}
	return cs
}

// AcquiredHow is the few words that say how a sandbox was got.
func AcquiredHow(a *pool.Acquired, poolName string) string {
	if a.Warm {
		return fmt.Sprintf("claimed warm from pool %s", poolName)
	}
	return "cold: " + a.Why
}

// CompletePoolNames completes the names of the pools in the namespace.
func CompletePoolNames(f cmdutil.Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		names, err := namesForCompletion(cmd.Context(), f, toComplete, func(ctx context.Context, client kubernetes.Interface, namespace string) ([]string, error) {
			pools, _, err := pool.ListPools(ctx, client, namespace)
			names := make([]string, 0, len(pools))
			for _, p := range pools {
				names = append(names, p.Name)
			}
			return names, err
		})
		if err != nil {
			cobra.CompDebugln(err.Error(), true)
			return nil, cobra.ShellCompDirectiveError
		}
		return Without(names, args), cobra.ShellCompDirectiveNoFileComp
	}
}
