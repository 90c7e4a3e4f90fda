package sandbox

import (
	"context"
	"errors"
	"io"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// workdirScript changes directory before running the command; the directory
// and the command travel as arguments, never inside the script text.
const workdirScript = `cd -- "$0" || exit 126; exec "$@"`

// ExecCommand builds the argument vector run in the sandbox for a command
// with extra environment (K=V pairs, already validated) and an optional
// working directory. Kubernetes' exec has neither, so env(1) and sh do it.
func ExecCommand(command []string, env []string, workdir string) []string {
	out := []string{}
	if len(env) > 0 {
		out = append(out, "env")
		out = append(out, env...)
	}
	if workdir != "" {
		out = append(out, "sh", "-c", workdirScript, workdir)
	}
	return append(out, command...)
}

// ValidateEnvPairs checks K=V pairs given to exec -e.
func ValidateEnvPairs(pairs []string) error {
	for _, p := range pairs {
		k, _, err := ParseKeyValue("`env`", p)
		if err != nil {
			return field.Invalid("env", "%v", err)
		}
		if err := ValidateEnvName(k); err != nil {
			return field.Invalid("env", "`env` %q: %v", p, err)
		}
	}
	return nil
}

// Runner runs a command in a sandbox, streaming stdin, stdout and stderr.
// A command that ran and exited non-zero comes back as an error with an
// ExitStatus() int method (client-go's exec.CodeExitError has one).
type Runner interface {
	Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// ExitCode returns the exit status carried by err, if any.
func ExitCode(err error) (int, bool) {
	var exit interface{ ExitStatus() int }
	if errors.As(err, &exit) {
		return exit.ExitStatus(), true
	}
	return 0, false
}
