package agentmock

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// CLIDir is where hack/agent-clis.sh installs the pinned agent CLIs (their
// node_modules/.bin): keyed by the first 12 hex digits of
// sha256(package.json + package-lock.json) of test/agents/npm, under
// $AGENTKERNEL_TOOLS_DIR or the user's cache directory.
func CLIDir() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	var lock []byte
	for _, name := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(root, "test", "agents", "npm", name))
		if err != nil {
			return "", err
		}
		lock = append(lock, b...)
	}
	sum := sha256.Sum256(lock)
	base := os.Getenv("AGENTKERNEL_TOOLS_DIR")
	if base == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory for the agent CLIs (%v); fetch them with hack/agent-clis.sh", err)
		}
		base = filepath.Join(cache, "kubectl-agentkernel")
	}
	return filepath.Join(base, "agents", "npm-"+hex.EncodeToString(sum[:])[:12], "node_modules", ".bin"), nil
}
