package sandbox

import (
	"context"
	"time"
)

// cleanupTimeout bounds the removal of what a failed or interrupted command
// made.
const cleanupTimeout = 30 * time.Second

type cleanupKey struct{}

// WithCleanupContext returns ctx carrying the context that cleanups run on
// once ctx itself is done. The command line gives one that a second Ctrl-C
// cancels: the first interrupt stops the work, the second the tidying up.
// Without one, cleanups outlive ctx's cancellation (but not its values).
func WithCleanupContext(ctx, cleanup context.Context) context.Context {
	return context.WithValue(ctx, cleanupKey{}, cleanup)
}

// cleanupContext is the context to undo work on, bounded by cleanupTimeout.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cleanupBase(ctx), cleanupTimeout)
}

// cleanupBase is the cleanup context without a bound of its own, for a
// caller that bounds its wait itself.
func cleanupBase(ctx context.Context) context.Context {
	if base, ok := ctx.Value(cleanupKey{}).(context.Context); ok {
		return base
	}
	return context.WithoutCancel(ctx)
}

// CleanupContext is the context for undo work outside this package (a
// probe's sandboxes, say): the one WithCleanupContext gave, else ctx
// without its cancellation, bounded by cleanupTimeout.
func CleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return cleanupContext(ctx)
}
