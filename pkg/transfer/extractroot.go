package transfer

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// CopyFromSandboxIn is CopyFromSandbox for a destination inside root, named
// relative to it: every directory made, file written and link planted goes
// through root (or a directory opened from it), so nothing — not a
// symlink swapped in by someone racing the copy — can take the copy outside
// root. local ending in '/' means "into this directory".
func CopyFromSandboxIn(ctx context.Context, r sandbox.Runner, remote string, root *os.Root, local string, limits Limits, warn io.Writer) error {
	remote = strings.TrimSuffix(remote, "/")
	if remote == "" || remote == "/" {
		return fmt.Errorf("cannot copy the sandbox's root directory: name a directory below it, e.g. %s", sandbox.WorkspaceDir)
	}
	_, base := path.Split(remote)
	target, dir, err := targetIn(root, local, base)
	if err != nil {
		return err
	}
	defer dir.Close()

	return copyOut(ctx, r, remote, dir, target, limits, warn)
}

// targetIn is localTarget inside root: it opens, through root, the
// directory that will hold the copy and names the copy inside it.
func targetIn(root *os.Root, local, base string) (string, *os.Root, error) {
	if local == "" {
		return "", nil, fmt.Errorf("empty local destination")
	}
	into := strings.HasSuffix(local, "/") || strings.HasSuffix(local, string(filepath.Separator))
	local = filepath.Clean(local)
	if into {
		if err := root.MkdirAll(local, 0o755); err != nil {
			return "", nil, err
		}
	}
	if info, err := root.Stat(local); err == nil && info.IsDir() {
		dir, err := root.OpenRoot(local)
		return base, dir, err
	}
	if into {
		return "", nil, fmt.Errorf("%s is not a directory", local)
	}
	if err := root.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return "", nil, err
	}
	dir, err := root.OpenRoot(filepath.Dir(local))
	return filepath.Base(local), dir, err
}
