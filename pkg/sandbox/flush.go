package sandbox

import (
	"context"
	"fmt"
	"io"

	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// Flush runs `sync` in a running sandbox, so every write a command saw
// acknowledged is on its volume: what suspend and a snapshot do first.
// noSync: the image has no sync, and its volume is flushed only when it
// is unmounted (which every driver does) — the caller says so.
//
// The exec has its output streams, though sync prints nothing: the API
// server refuses an exec with none ("you must specify at least 1 of
// stdin, stdout, stderr").
func Flush(ctx context.Context, run *PodExec) (noSync bool, err error) {
	var stderr untrusted.Buffer
	err = run.Run(ctx, []string{"sh", "-c", "command -v sync >/dev/null || exit 127; sync"}, nil, io.Discard, &stderr)
	if code, ok := ExitCode(err); ok && code == 127 {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w %s", err, untrusted.Line(stderr.String(), 256))
	}
	return false, nil
}
