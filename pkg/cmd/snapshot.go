package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
)

var snapshotExample = templates.Examples(`
	# Save an agent's work (/workspace and $HOME) to a file
	kubectl agentkernel snapshot demo --to demo.tar.gz

	# ... and start a new sandbox from it, here or on another cluster
	kubectl agentkernel create fork --from demo.tar.gz`)

// SnapshotOptions saves a sandbox's work to a workspace archive.
type SnapshotOptions struct {
	Name string
	To   string

	cli.Clients
	genericiooptions.IOStreams
}

// NewSnapshotOptions returns SnapshotOptions writing to streams.
func NewSnapshotOptions(streams genericiooptions.IOStreams) *SnapshotOptions {
	return &SnapshotOptions{IOStreams: streams}
}

// NewCmdSnapshot returns the snapshot command.
func NewCmdSnapshot(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewSnapshotOptions(streams)
	cmd := &cobra.Command{
		Use:                   "snapshot NAME --to FILE",
		DisableFlagsInUseLine: true,
		Short:                 "Save a sandbox's work to a file",
		Long: templates.LongDesc(`
			Save a sandbox's /workspace and $HOME to a compressed archive, to start new
			sandboxes from (create --from FILE) on this cluster or another. What leaves
			the sandbox goes through the same checks as cp: no entry climbs out of its
			directory and no link leads out, so the archive holds nothing cp would not
			have copied. A suspended sandbox is resumed first (--no-resume refuses).`),
		Example:           snapshotExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE:              cli.CompleteValidateRun(o, func(_ *cobra.Command, args []string) error { return o.Complete(f, args) }),
	}
	cmd.Flags().StringVar(&o.To, "to", o.To, "The archive to write (a .tar.gz); it is replaced only once the whole snapshot is taken")
	o.Resume.AddNoResumeFlag(cmd.Flags())
	return cmd
}

// Complete takes the name and builds clients.
func (o *SnapshotOptions) Complete(f cmdutil.Factory, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("snapshot takes exactly one sandbox name (got %d)", len(args))
	}
	o.Name = args[0]
	o.Resume.Notice = o.ErrOut
	return o.Clients.Complete(f)
}

// Validate checks the name and the destination.
func (o *SnapshotOptions) Validate() error {
	if o.To == "" {
		return errors.New("--to FILE is required: this version saves snapshots to a file (the cluster's volume snapshots are not used yet)")
	}
	return sandbox.ValidateName(o.Name)
}

// Run archives the sandbox's work into a temporary file next to --to, and
// renames it into place once it is whole.
func (o *SnapshotOptions) Run(ctx context.Context) error {
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
