package sandbox

import "context"

// CleanupContext is the context to undo work on once ctx is done — the one
// WithCleanupContext put there (a second Ctrl-C cancels it), or one that
// outlives ctx's cancellation — bounded by the same timeout as the cleanups
// of this package. For callers outside it that tidy up after themselves
// (a server deleting the sandboxes of its session).
func CleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return cleanupContext(ctx)
}
