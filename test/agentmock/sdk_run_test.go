package agentmock

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestOfficialSDKs runs the tests of ./sdk, a module of its own so that the
// official SDKs stay out of the product's go.mod: Anthropic's and OpenAI's
// Go SDKs read the mock's streams, tool calls and errors.
func TestOfficialSDKs(t *testing.T) {
	if testing.Short() {
		t.Skip("the official SDKs' tests build a module of their own: they run without -short (the e2e tier)")
	}
	_, file, _, _ := runtime.Caller(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "./...")
	cmd.Dir = filepath.Join(filepath.Dir(file), "sdk")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test in %s: %v\n%s", cmd.Dir, err, out)
	}
	t.Logf("%s", out)
}
