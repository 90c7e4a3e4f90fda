package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/snapshot"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
)

var snapshotExample = templates.Examples(`
	# Take a CSI volume snapshot of a persistent sandbox's workspace
	kubectl agentkernel snapshot demo demo-before-refactor

	# ... and fork the agent's state from it
	kubectl agentkernel create fork --from demo-before-refactor

	# Save an agent's work (/workspace and $HOME) to a file, on any cluster
	kubectl agentkernel snapshot demo --to demo.tar.gz

	# ... and start a new sandbox from it, here or on another cluster
	kubectl agentkernel create fork --from demo.tar.gz`)

// SnapshotOptions saves a sandbox's work: as a CSI VolumeSnapshot of its
// workspace, or to a workspace archive (--to).
type SnapshotOptions struct {
	Name string
	// Snapshot is the VolumeSnapshot's name (a default when not given).
	Snapshot string
	// Class is the VolumeSnapshotClass ("" for the driver's default).
	Class string
	To    string
	cli.WaitFlags

	cli.Clients
	genericiooptions.IOStreams
}

// NewSnapshotOptions returns SnapshotOptions writing to streams.
func NewSnapshotOptions(streams genericiooptions.IOStreams) *SnapshotOptions {
	return &SnapshotOptions{IOStreams: streams, WaitFlags: cli.NewWaitFlags(5 * time.Minute)}
}

// NewCmdSnapshot returns the snapshot command.
func NewCmdSnapshot(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewSnapshotOptions(streams)
	cmd := &cobra.Command{
		Use:                   "snapshot NAME [SNAPSHOT] [--class CLASS] | NAME --to FILE",
		DisableFlagsInUseLine: true,
		Short:                 "Snapshot a sandbox's work: a CSI volume snapshot, or a file",
		Long: templates.LongDesc(`
			Snapshot a persistent sandbox's workspace (/workspace and $HOME) as a CSI
			VolumeSnapshot, where the cluster takes them (kubectl agentkernel doctor says
			whether it does), running or suspended; a running sandbox's writes are flushed
			first. Start new sandboxes from it with create --from SNAPSHOT. SNAPSHOT
			defaults to NAME and the time. The snapshot is yours: deleting the sandbox
			keeps it (kubectl delete volumesnapshot SNAPSHOT removes it).

			With --to FILE, save /workspace and $HOME to a compressed archive instead, on
			any cluster and for any sandbox, to start new sandboxes from (create --from
			FILE) on this cluster or another. What leaves the sandbox goes through the
			same checks as cp: no entry climbs out of its directory and no link leads out,
			so the archive holds nothing cp would not have copied. A suspended sandbox is
			resumed first (--no-resume refuses).`),
		Example:           snapshotExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE:              cli.CompleteValidateRun(o, func(_ *cobra.Command, args []string) error { return o.Complete(f, args) }),
	}
	cmd.Flags().StringVar(&o.To, "to", o.To, "Save to this archive (a .tar.gz) instead of a volume snapshot; it is replaced only once the whole snapshot is taken")
	cmd.Flags().StringVar(&o.Class, "class", o.Class, "The VolumeSnapshotClass; by default the cluster's default class for the workspace's driver")
	o.AddWaitFlags(cmd.Flags(), "the volume snapshot is ready to use (one that fails or is not ready in time is deleted again)")
	o.Resume.AddNoResumeFlag(cmd.Flags())
	return cmd
}

// Complete takes the names and builds clients.
func (o *SnapshotOptions) Complete(f cmdutil.Factory, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return fmt.Errorf("snapshot takes a sandbox name and, optionally, the snapshot's name (got %d arguments)", len(args))
	}
	o.Name = args[0]
	if len(args) == 2 {
		o.Snapshot = args[1]
	}
	o.Resume.Notice = o.ErrOut
	return o.Clients.Complete(f)
}

// Validate checks the names and that the two ways are not mixed.
func (o *SnapshotOptions) Validate() error {
	if err := o.WaitFlags.Validate(); err != nil {
		return err
	}
	if o.To != "" && (o.Snapshot != "" || o.Class != "") {
		return errors.New("--to saves to a file: it takes no snapshot name and no --class (those are for a volume snapshot)")
	}
	if o.Snapshot != "" {
		if errs := validation.IsDNS1123Subdomain(o.Snapshot); len(errs) > 0 {
			return fmt.Errorf("invalid snapshot name %q: %s", o.Snapshot, strings.Join(errs, "; "))
		}
	}
	return sandbox.ValidateName(o.Name)
}

// Run takes the volume snapshot, or writes the archive.
func (o *SnapshotOptions) Run(ctx context.Context) error {
	if o.To != "" {
		return o.archive(ctx)
	}
	name := o.Snapshot
	if name == "" {
		name = snapshot.DefaultName(o.Name, time.Now())
	}
	vs, err := snapshot.Take(ctx, o.Clientset, o.Snapshots, o.Namespace, o.Name, name, snapshot.Options{
		Class: o.Class, Flush: o.FlushWorkspace(o.ErrOut), Wait: o.Wait, Timeout: o.Timeout,
	})
	if err != nil {
		return o.explainSnapshot(err, name)
	}
	state := "ready to use"
	if !o.Wait {
		state = "asked for (not waited for: see kubectl get volumesnapshot " + vs.Name + " -n " + o.Namespace + ")"
	}
	_, err = fmt.Fprintf(o.Out, "volumesnapshot/%s of sandbox/%s's workspace %s; start a sandbox from it with: kubectl agentkernel create NEW --from %s -n %s\n",
		vs.Name, o.Name, state, vs.Name, o.Namespace)
	return err
}

// explainSnapshot words a snapshot's failure with what to do next.
func (o *SnapshotOptions) explainSnapshot(err error, name string) error {
	toFile := fmt.Sprintf("save the work to a file instead: kubectl agentkernel snapshot %s --to %s.tar.gz -n %s", o.Name, o.Name, o.Namespace)
	var (
		noAPI    *snapshot.NoSnapshotAPIError
		exists   *snapshot.ExistsError
		failed   *snapshot.FailedError
		notReady *snapshot.NotReadyError
		notPers  *sandbox.NotPersistentError
	)
	switch {
	case errors.As(err, &noAPI):
		return fmt.Errorf("%w; %s", err, toFile)
	case errors.As(err, &notPers):
		return fmt.Errorf("%w; a volume snapshot needs a workspace (create --persist): %s", err, toFile)
	case errors.As(err, &exists):
		return fmt.Errorf("%w; name the snapshot otherwise, or delete that one: kubectl delete volumesnapshot %s -n %s", err, name, o.Namespace)
	case errors.As(err, &failed):
		return fmt.Errorf("%w; it was deleted again. Name a VolumeSnapshotClass of the workspace's driver with --class (kubectl get volumesnapshotclasses), or %s", err, toFile)
	case errors.As(err, &notReady):
		return fmt.Errorf("%w; it was deleted again: raise --timeout, or %s", err, toFile)
	}
	return o.Explain(err, o.Namespace)
}

// archive writes the sandbox's work into a temporary file next to --to,
// and renames it into place once it is whole.
func (o *SnapshotOptions) archive(ctx context.Context) error {
	pod, err := o.RunningSandbox(ctx, o.Namespace, o.Name)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.To), "."+filepath.Base(o.To)+".*")
	if err != nil {
		return fmt.Errorf("cannot write the snapshot next to %s: %w", o.To, err)
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	err = transfer.ArchiveWorkspace(ctx, o.ExecIn(pod), tmp, workspaceLimits(ctx, &o.Clients, pod), o.ErrOut)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return o.ExplainStream(err, o.Namespace)
	}
	if err := os.Rename(tmp.Name(), o.To); err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.Out, "sandbox/%s saved to %s\n", o.Name, o.To)
	return err
}

// workspaceLimits bound what moves out of (or into) a sandbox's
// workspace: its claim's size for a persistent sandbox, else what its
// ephemeral storage holds.
func workspaceLimits(ctx context.Context, c *cli.Clients, pod *corev1.Pod) transfer.Limits {
	if sandbox.IsPersistent(pod) {
		if pvc, err := sandbox.FindWorkspace(ctx, c.Clientset, pod.Namespace, sandbox.NameOf(pod)); err == nil {
			if size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; size.Value() > 0 {
				return transfer.LimitsFor(size.Value())
			}
		}
	}
	return transfer.DefaultLimits(pod)
}
