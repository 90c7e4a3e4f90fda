package transfer

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// A workspace archive is a persistent sandbox's work as one file: a
// gzipped tar whose one top-level directory holds workspace/ (the
// sandbox's /workspace) and home/ (its $HOME). It is how work moves where
// the cluster has no volume snapshots, and between clusters.
//
// Both directions go through the hostile-tar extraction of copy-out, into
// a private temporary directory first: what leaves a sandbox is checked
// before it is written into an archive (no name climbs, no link leads out,
// the limits hold), and an archive from anywhere is checked before any of
// it enters a sandbox. The archive never holds more than cp would have
// copied, and is never extracted anywhere but that directory.

// ArchiveTop is the one top-level directory of a workspace archive.
const ArchiveTop = "agentkernel-workspace"

// archiveTrees are the sandbox's directories an archive holds, and their
// names inside ArchiveTop.
var archiveTrees = []struct{ remote, local string }{
	{sandbox.WorkspaceDir, "workspace"},
	{sandbox.HomeDir, "home"},
}

// ArchiveWorkspace writes the sandbox's /workspace and $HOME to out as a
// workspace archive.
func ArchiveWorkspace(ctx context.Context, r sandbox.Runner, out io.Writer, limits Limits, warn io.Writer) error {
	tmp, err := os.MkdirTemp("", "agentkernel-archive-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	top := filepath.Join(tmp, ArchiveTop)
	if err := os.Mkdir(top, 0o700); err != nil {
		return err
	}
	for _, t := range archiveTrees {
		if err := CopyFromSandbox(ctx, r, t.remote, filepath.Join(top, t.local), limits, warn); err != nil {
			return fmt.Errorf("archiving the sandbox's %s: %w", t.remote, err)
		}
	}
	zw := gzip.NewWriter(out)
	if err := WriteTar(zw, top, ArchiveTop, warn); err != nil {
		return err
	}
	return zw.Close()
}

// RestoreWorkspace unpacks a workspace archive into the sandbox's
// /workspace and $HOME, next to what is there. limits bound what the
// archive may hold (a gzip bomb stops at MaxBytes).
func RestoreWorkspace(ctx context.Context, r sandbox.Runner, archive io.Reader, limits Limits, warn io.Writer) error {
	zr, err := gzip.NewReader(archive)
	if err != nil {
		return &ArchiveError{Why: fmt.Sprintf("it is not gzip-compressed (%v)", err)}
	}
	tmp, err := os.MkdirTemp("", "agentkernel-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := extractTar(ctx, zr, root, ArchiveTop, ArchiveTop, limits, warn); err != nil {
		var limit *LimitError
		if errors.As(err, &limit) {
			return err
		}
		return &ArchiveError{Why: err.Error()}
	}
	for _, t := range archiveTrees {
		dir := filepath.Join(tmp, ArchiveTop, t.local)
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) || len(entries) == 0 {
			continue
		}
		if err != nil {
			return err
		}
		cmd, _, _ := extractCommand(t.remote+"/", "")
		var stderr untrusted.Buffer
		runErr, err := sendTar(ctx, r, cmd, &stderr, func(w io.Writer) error {
			tw := tar.NewWriter(w)
			for _, e := range entries {
				if err := writeTarTree(tw, filepath.Join(dir, e.Name()), e.Name(), warn); err != nil {
					return err
				}
			}
			return tw.Close()
		})
		if err != nil {
			return fmt.Errorf("reading the unpacked archive: %w", err)
		}
		if runErr != nil {
			return copyError("restoring "+path.Clean(t.remote), runErr, &stderr)
		}
	}
	return nil
}

// CopyWorkspace copies one sandbox's /workspace and $HOME into another's,
// as an archive streamed from one to the other: a fork where the cluster
// cannot clone volumes.
func CopyWorkspace(ctx context.Context, from, to sandbox.Runner, limits Limits, warn io.Writer) error {
	pr, pw := io.Pipe()
	archived := make(chan error, 1)
	go func() {
		err := ArchiveWorkspace(ctx, from, pw, limits, warn)
		pw.CloseWithError(err)
		archived <- err
	}()
	err := RestoreWorkspace(ctx, to, pr, limits, warn)
	pr.CloseWithError(errExtractionStopped)
	if aerr := <-archived; aerr != nil {
		return aerr // the source's failure explains the restore's
	}
	return err
}

// ArchiveError: a workspace archive that is not one, or holds what no
// sandbox may receive.
type ArchiveError struct{ Why string }

func (e *ArchiveError) Error() string { return "not a usable workspace archive: " + e.Why }
