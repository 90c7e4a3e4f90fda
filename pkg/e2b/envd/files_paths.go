package envd

import (
	"fmt"
	"path"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// resolvePath turns a path as the SDK sends it into the absolute path in
// the sandbox, the way envd does: "~" and "~/x" are the home directory and
// below it, and a relative path is relative to the home directory (the
// spec's "file.txt" resolves to ~/file.txt). Every sandbox runs as one
// user whose home is sandbox.HomeDir, so the username the SDK names
// (?username=, or RPC's Basic authorization "user:") changes nothing
// here: E2B's "user" and "root" both mean the sandbox's one user.
func resolvePath(p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("path is required")
	case len(p) > maxPathBytes:
		return "", fmt.Errorf("path is longer than %d bytes", maxPathBytes)
	case strings.IndexByte(p, 0) >= 0:
		return "", fmt.Errorf("path contains a NUL byte")
	case p == "~":
		return sandbox.HomeDir, nil
	case strings.HasPrefix(p, "~/"):
		p = sandbox.HomeDir + p[1:]
	case !strings.HasPrefix(p, "/"):
		p = sandbox.HomeDir + "/" + p
	}
	return path.Clean(p), nil
}
