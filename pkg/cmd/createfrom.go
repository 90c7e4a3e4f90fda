package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
	"github.com/agentkernel/kubectl-agentkernel/pkg/snapshot"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
)

// create --from starts a new persistent sandbox with the work of another:
// a sandbox of the namespace (a fork), a CSI VolumeSnapshot (snapshot NAME
// SNAPSHOT), or a workspace archive (snapshot --to FILE). The new sandbox's
// shape is the flags', as for any create; only the files come from the
// source. Where the cluster's storage can, the files never leave it: a
// snapshot is restored and a sandbox's workspace cloned by the CSI driver
// as the new workspace is provisioned. Otherwise they are streamed across
// once the new sandbox runs, through the same checks as cp.

// How the files of --from reach the new workspace.
const (
	fromArchive  = "archive"  // streamed in from a file
	fromCopy     = "copy"     // streamed across from a running sandbox
	fromClone    = "clone"    // a CSI clone of a sandbox's workspace
	fromSnapshot = "snapshot" // a CSI restore of a VolumeSnapshot
)

// fromFile: --from names a file (it exists, or has a path in it), not a
// sandbox or a snapshot.
func fromFile(from string) bool {
	if _, err := os.Stat(from); err == nil {
		return true
	}
	return strings.ContainsAny(from, `/\.`)
}

// validateFrom checks --from before anything is made.
func (o *CreateOptions) validateFrom() error {
	switch {
	case o.From == "":
		return nil
	case o.Claim.Pool != "":
		return fmt.Errorf("--from cannot be used with --pool: a warm sandbox has no workspace to fill")
	case fromFile(o.From):
		if _, err := os.Stat(o.From); err != nil {
			return fmt.Errorf("--from %s: %v", o.From, err)
		}
		return o.needsWait(fromArchive)
	case o.From == o.Name:
		return fmt.Errorf("--from %s names the sandbox being created", o.From)
	}
	if errs := validation.IsDNS1123Subdomain(o.From); len(errs) > 0 {
		return fmt.Errorf("--from %q is neither a file nor the name of a sandbox or a volume snapshot: %s", o.From, strings.Join(errs, "; "))
	}
	return nil
}

// needsWait: files that are streamed in go in once the sandbox runs.
func (o *CreateOptions) needsWait(how string) error {
	if o.Wait || how == fromClone || how == fromSnapshot {
		return nil
	}
	return fmt.Errorf("--from %s needs --wait: its files are streamed in once the sandbox runs", o.From)
}

// resolveFrom decides, before the sandbox is made, where --from's files
// come from, and gives the workspace its dataSource when the cluster's
// storage fills it. A sandbox's name wins over a snapshot's.
func (o *CreateOptions) resolveFrom(ctx context.Context, prog *cli.Progress) error {
	if o.From == "" {
		return nil
	}
	if fromFile(o.From) {
		o.fromHow = fromArchive
		return nil
	}
	ws := o.spec.Workspace
	pvc, err := sandbox.FindWorkspace(ctx, o.Clientset, o.Namespace, o.From)
	var notPersistent *sandbox.NotPersistentError
	var notFound *sandbox.NotFoundError
	switch {
	case err == nil:
		can, why := snapshot.Cloneable(ctx, o.Clientset, pvc)
		class := ptr.Deref(pvc.Spec.StorageClassName, "")
		if can && ws.StorageClass != "" && ws.StorageClass != class {
			can, why = false, fmt.Sprintf("a CSI clone stays in its source's StorageClass %q, and --storage-class asks for %q", class, ws.StorageClass)
		}
		if !can {
			prog.Linef("copying the work of sandbox/%s into sandbox/%s, streamed once it runs (no CSI clone: %s)", o.From, o.Name, why)
			o.fromHow = fromCopy
			return o.needsWait(fromCopy)
		}
		if pod, err := sandbox.Find(ctx, o.Clientset, o.Namespace, o.From); err == nil && o.DryRun == cmdutil.DryRunNone &&
			pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil {
			if err := o.FlushWorkspace(o.ErrOut)(ctx, pod); err != nil {
				return fmt.Errorf("flushing sandbox %q's writes before cloning its workspace: %w; nothing was created", o.From, err)
			}
		}
		ws.StorageClass, ws.Source = class, snapshot.CloneOf(pvc)
		atLeast(ws, pvc.Spec.Resources.Requests[corev1.ResourceStorage])
		o.fromHow = fromClone
		prog.Linef("cloning the workspace of sandbox/%s (a CSI volume clone by %s's driver)", o.From, classOrDefault(class))
		return nil
	case errors.As(err, &notPersistent):
		prog.Linef("copying the work of sandbox/%s into sandbox/%s, streamed once it runs (it has no workspace to clone)", o.From, o.Name)
		o.fromHow = fromCopy
		return o.needsWait(fromCopy)
	case !errors.As(err, &notFound):
		return o.Explain(err, o.Namespace)
	}
	vs, err := snapshot.Find(ctx, o.Snapshots, o.Namespace, o.From)
	var noSnap *snapshot.NotFoundError
	var noAPI *snapshot.NoSnapshotAPIError
	switch {
	case errors.As(err, &noSnap), errors.As(err, &noAPI):
		return fmt.Errorf("--from %s: no sandbox or volume snapshot of that name in namespace %q (and no such file); list them with: kubectl agentkernel list -n %s, kubectl get volumesnapshots -n %s",
			o.From, o.Namespace, o.Namespace, o.Namespace)
	case err != nil:
		return o.Explain(err, o.Namespace)
	}
	if err := snapshot.Restorable(vs); err != nil {
		return fmt.Errorf("--from %s: %w; nothing was created", o.From, err)
	}
	if ws.StorageClass == "" {
		ws.StorageClass = snapshot.StorageClass(vs)
	}
	ws.Source = snapshot.From(vs)
	atLeast(ws, snapshot.RestoreSize(vs))
	o.fromHow = fromSnapshot
	prog.Linef("restoring volumesnapshot/%s into sandbox/%s's workspace (a CSI restore)", vs.Name, o.Name)
	return nil
}

// atLeast grows the workspace to size: a clone or a restore is never
// smaller than its source.
func atLeast(ws *sandbox.Workspace, size resource.Quantity) {
	if size.Cmp(ws.Size) > 0 {
		ws.Size = size.DeepCopy()
	}
}

func classOrDefault(class string) string {
	if class == "" {
		return "the default StorageClass"
	}
	return "StorageClass " + class
}

// fill puts the source's work into the new sandbox, which is deleted
// again if that fails: a fork is whole or not there.
func (o *CreateOptions) fill(ctx context.Context, created *sandbox.Created, prog *cli.Progress) error {
	if created.Pod == nil || o.DryRun != cmdutil.DryRunNone || (o.fromHow != fromArchive && o.fromHow != fromCopy) {
		return nil
	}
	err := o.fillFrom(ctx, created, prog)
	if err == nil {
		return nil
	}
	if _, derr := created.Delete(ctx, o.Clientset, 0); derr != nil {
		err = field.Also(err, derr)
	}
	return err
}

func (o *CreateOptions) fillFrom(ctx context.Context, created *sandbox.Created, prog *cli.Progress) error {
	limits := workspaceLimits(ctx, &o.Clients, created.Pod)
	to := o.ExecIn(created.Pod)
	if o.fromHow == fromArchive {
		f, err := os.Open(o.From)
		if err != nil {
			return err
		}
		defer f.Close()
		prog.Linef("restoring %s into sandbox/%s", o.From, o.Name)
		if err := transfer.RestoreWorkspace(ctx, to, f, limits, prog.Warn()); err != nil {
			return fmt.Errorf("restoring %s: %w", o.From, err)
		}
		return nil
	}
	source, err := o.RunningSandbox(ctx, o.Namespace, o.From)
	if err != nil {
		return err
	}
	prog.Linef("copying the work of sandbox/%s into sandbox/%s", o.From, o.Name)
	if err := transfer.CopyWorkspace(ctx, o.ExecIn(source), to, limits, prog.Warn()); err != nil {
		return o.ExplainStream(fmt.Errorf("forking sandbox/%s: %w", o.From, err), o.Namespace)
	}
	return nil
}
