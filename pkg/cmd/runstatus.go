package cmd

// run's exit status, docker run's way: the command's own, 125 when the
// plugin failed before or around it, 130/143 when a signal ended it.

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// PluginFailed is the exit status of `run` when the plugin itself failed
// before the command ran (docker run's convention): anything else is the
// command's own status, or 130/143 for SIGINT/SIGTERM.
const PluginFailed = 125

// statusError is an error to print that also decides the exit status
// (ExitError, in contrast, is silent: the command already spoke).
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }
func (e *statusError) ExitCode() int { return e.code }

// failed turns an error of the plugin into its exit status: 130/143 when a
// signal caused it, 125 otherwise.
func (o *RunOptions) failed(ctx context.Context, err error) error {
	if ctx != nil && ctx.Err() != nil {
		if cause := context.Cause(ctx); !errors.Is(err, cause) {
			return fmt.Errorf("%w (%v)", cause, cli.FlagWordsError(err))
		}
		return err
	}
	var se *statusError
	if errors.As(err, &se) {
		return err
	}
	return &statusError{PluginFailed, err}
}

// withLaterFailure adds the failure of a last step (deleting) to the result
// so far: the command's status stays, unless it was 0.
func withLaterFailure(ctx context.Context, result, later error) error {
	if result == nil {
		if ctx.Err() != nil {
			return field.Also(context.Cause(ctx), later)
		}
		return &statusError{PluginFailed, later}
	}
	var exit *ExitError
	if errors.As(result, &exit) {
		return &statusError{exit.Code, later}
	}
	var se *statusError
	if errors.As(result, &se) {
		return &statusError{se.code, field.Also(se.err, later)}
	}
	return field.Also(result, later)
}
