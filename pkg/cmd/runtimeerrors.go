package cmd

import (
	"context"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/klog/v2"
)

// quietRuntimeErrors keeps client-go's "unhandled" errors (e.g. "Copying
// stdout failed" when a copy stops reading a stream on purpose) off the
// user's terminal, where klog would print them as raw E-lines before our own
// message: every command reports what went wrong in one line of its own.
// They still reach klog at verbosity 4, for whoever turns it on.
func quietRuntimeErrors() {
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{
		func(ctx context.Context, err error, msg string, keysAndValues ...interface{}) {
			if klog.V(4).Enabled() {
				klog.FromContext(ctx).V(4).Info(msg, append([]interface{}{"err", err}, keysAndValues...)...)
			}
		},
	}
}
