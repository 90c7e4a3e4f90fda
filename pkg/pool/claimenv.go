package pool

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A claim brings environment to a warm Pod, whose container's env is fixed:
// it writes it to the Pod's environment file (sandbox.EnvFilePath) over
// exec stdin, and every later exec sources it (see pkg/sandbox envfile.go).

// deliverScript writes stdin to the environment file $1 (unless $1 is
// empty) and the idle timeout $2 to $3, each atomically and readable only
// by the sandbox's user, then wakes PID 1 to read the timeout.
const deliverScript = `set -eu
umask 077
if [ -n "$1" ]; then mkdir -p "${1%/*}"; cat > "$1.new"; mv -f "$1.new" "$1"; fi
if [ "$2" != 0 ]; then mkdir -p "${3%/*}"; echo "$2" > "$3.new"; mv -f "$3.new" "$3"; kill -USR1 1 2>/dev/null || :; fi`

// deliverCommand is the exec that delivers a claim's environment (file ""
// for none) and idle timeout in seconds (0 for none).
func deliverCommand(file string, idle int64) []string {
	return []string{"sh", "-c", deliverScript, "agentkernel-claim", file, strconv.FormatInt(idle, 10), sandbox.IdleFile}
}

// envFileContent renders env and the named secrets as shell that exports
// them. Values are single-quoted, so the shell reads them as they are:
// quotes, newlines, $ and backquotes included.
func envFileContent(env []corev1.EnvVar, secretNames []string, values map[string]string) ([]byte, error) {
	var b bytes.Buffer
	put := func(name, value string) error {
		if err := sandbox.ValidateEnvName(name); err != nil {
			return err
		}
		// Only a shell variable name can be exported by a shell.
		if !isShellName(name) {
			return fmt.Errorf("environment variable %q cannot be set in a claimed sandbox: a shell exports only names of letters, digits and '_' not starting with a digit", name)
		}
		if strings.ContainsRune(value, 0) {
			return fmt.Errorf("the value of %s contains a NUL byte, which no environment variable can hold", name)
		}
		fmt.Fprintf(&b, "export %s=%s\n", name, shellQuote(value))
		return nil
	}
	for _, e := range env {
		if err := put(e.Name, e.Value); err != nil {
			return nil, err
		}
	}
	for _, n := range secretNames {
		v, ok := values[n]
		if !ok {
			return nil, field.Invalid("secretEnvNames", "no value for `secretEnvNames` %s", n)
		}
		if err := put(n, v); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isShellName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}
