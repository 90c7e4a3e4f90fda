package cmd

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// AddFlags registers the flags on cmd.
func (f *PoolClaimFlags) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.Pool, "pool", f.Pool, "Claim a warm sandbox from this pool (kubectl agentkernel pool create); with none ready, create it cold from the pool's definition")
	cmd.Flags().BoolVar(&f.Wait, "pool-wait", f.Wait, "With --pool: wait (up to --timeout) for a warm sandbox instead of creating one cold")
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

// claimMatch sorts the sandbox flags given on cmd: those that shape a
// sandbox come from the pool, so giving one means insisting on the pool's
// value (pool.ClaimFields); the claim's own (pool.PerClaimFields) are
// applied to the member it takes; any other is refused rather than
// silently ignored — including flags added to SandboxFlags after this was
// written.
func claimMatch(cmd *cobra.Command) ([]string, error) {
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
// --agents-file only says where --agent's preset is read from.
var claimNeutral = []string{"agents-file"}

// acquire claims the sandbox spec from the pool, or creates it cold; the
// caller says what happened (acquiredHow).
func (c *clients) acquire(ctx context.Context, spec *sandbox.Spec, secretValues map[string]string, match []string, pf PoolClaimFlags, create sandbox.CreateOptions) (*pool.Acquired, error) {
	create.SecretValues = secretValues
	a, err := pool.Acquire(ctx, c.claimClientset(), spec, pool.AcquireOptions{
		Pool:               pf.Pool,
		Match:              match,
		WaitForMember:      pf.Wait,
		Exec:               c.execIn,
		RefillInBackground: true, // the caller says what it got first, then waits (finishClaim)
		CreateOptions:      create,
	})
	if err != nil {
		return nil, c.explain(err, spec.Namespace)
	}
	return a, nil
}

// finishClaim waits for the claimed member's replacement, which is made
// while the caller already uses its sandbox: a process must not end before
// it, or the pool stays a member short until a pool command tops it up.
func finishClaim(a *pool.Acquired, errOut io.Writer) {
	if err := a.WaitRefill(); err != nil {
		fmt.Fprintf(errOut, "warning: %v\n", err)
	}
}

// claimClientset is the clientset a claim uses: the command's, speaking
// protobuf. A claim lists its pool's members, whole Pods (about 7 KiB each
// in JSON), and with many members and many claimants that list is most of
// what the API server and the client spend; protobuf is several times
// cheaper to encode and decode. The connection pool is shared (client-go
// caches transports by their TLS configuration). A fake clientset (tests)
// is used as it is.
func (c *clients) claimClientset() kubernetes.Interface {
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

// acquiredHow is the few words that say how a sandbox was got.
func acquiredHow(a *pool.Acquired, poolName string) string {
	if a.Warm {
		return fmt.Sprintf("claimed warm from pool %s", poolName)
	}
	return "cold: " + a.Why
}

// runClaim is create --pool.
func (o *CreateOptions) runClaim(ctx context.Context) error {
	if o.DryRun != cmdutil.DryRunNone {
		return o.dryRunClaim(ctx)
	}
	// The status line's events are those of a cold fallback's Pod; a warm
	// member is Running already and has none to wait out.
	report, stopStatus := newProgress(o.ErrOut, o.Quiet).waitStatus(ctx, o.Clientset, o.Namespace, o.Name)
	a, err := o.acquire(ctx, &o.spec, o.secretValues, o.match, *o.Claim, sandbox.CreateOptions{
		Wait:     o.Wait,
		Timeout:  o.Timeout,
		Progress: report,
	})
	stopStatus()
	if err != nil {
		return err
	}
	defer finishClaim(a, o.ErrOut)
	// An --agent preset's install step runs in the claimed sandbox as in a
	// cold one (a pool's members are made without it); if it fails, the
	// sandbox goes.
	if err := o.prepare(ctx, &sandbox.Created{Pod: a.Pod, Secret: a.Secret}, newProgress(o.ErrOut, o.Quiet)); err != nil {
		return err
	}
	how := acquiredHow(a, o.Claim.Pool)
	switch o.output() {
	case "":
		_, err = fmt.Fprintf(o.Out, "sandbox/%s created (%s)\n", o.Name, how)
		return err
	case "name":
		fmt.Fprintf(o.ErrOut, "sandbox/%s: %s\n", o.Name, how)
		_, err = fmt.Fprintf(o.Out, "sandbox/%s\n", o.Name)
		return err
	}
	fmt.Fprintf(o.ErrOut, "sandbox/%s: %s\n", o.Name, how)
	return o.printer.PrintObj(a.Pod, o.Out)
}

// dryRunClaim shows the sandbox a claim would get, as a cold create from
// the pool's definition would make it (a claimed member is the same Pod
// under a generated name): the pool must be read for that. Secret values
// are redacted; nothing is claimed or created.
func (o *CreateOptions) dryRunClaim(ctx context.Context) error {
	p, err := pool.GetPool(ctx, o.Clientset, o.Namespace, o.Claim.Pool)
	if err != nil {
		return o.explain(err, o.Namespace)
	}
	s, err := pool.ClaimedSpec(p, &o.spec, o.match)
	if err != nil {
		return err
	}
	suffix := fmt.Sprintf("dry run: as claimed from pool %s", p.Name)
	if o.DryRun == cmdutil.DryRunServer {
		// Admission of the sandbox a cold fallback would make.
		if _, err := sandbox.Create(ctx, o.Clientset, s, sandbox.CreateOptions{SecretValues: o.secretValues, ServerDryRun: true}); err != nil {
			return o.explain(err, o.Namespace)
		}
		suffix = fmt.Sprintf("server dry run: as created cold from pool %s", p.Name)
	}
	switch o.output() {
	case "":
		_, err := fmt.Fprintf(o.Out, "sandbox/%s created (%s)\n", o.Name, suffix)
		return err
	case "name":
		_, err := fmt.Fprintf(o.Out, "sandbox/%s\n", o.Name)
		return err
	}
	var objs []runtime.Object
	if sec := s.Secret(o.secretValues); sec != nil {
		objs = append(objs, sandbox.Redacted(sec))
	}
	if np := s.NetworkPolicy(); np != nil {
		objs = append(objs, np)
	}
	objs = append(objs, s.Pod())
	list := &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
	for _, obj := range objs {
		list.Items = append(list.Items, runtime.RawExtension{Object: obj})
	}
	return o.printer.PrintObj(list, o.Out)
}
