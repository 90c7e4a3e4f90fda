package sandbox

import (
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// A warm Pod cannot take new environment: a container's env is fixed when
// it starts. So the environment a claim brings — --env, and the values of
// --secret-env — goes into a file on the sandbox's memory-backed RunDir,
// streamed over exec STDIN (never in an argument list, the Pod spec, an
// event or a log), and every later exec sources that file before it runs
// the command. The claimed Pod's AnnotationEnvFile says where the file is;
// PodExec does the sourcing, so exec, cp, run, shell and MCP all get the
// environment without knowing. The file is named for the Pod: on a node
// where sandboxes share one filesystem (the simulated test node runs every
// sandbox's commands on one host), no sandbox reads another's.

// envFilePath is the environment file of a claimed Pod.
func envFilePath(podName string) string { return RunDir + "/" + podName + ".env" }

// EnvFileOf returns the environment file every exec in pod must source, or
// "" when it has none. Anything but a plain file in RunDir is ignored.
func EnvFileOf(pod *corev1.Pod) string {
	f := pod.Annotations[AnnotationEnvFile]
	if f == "" || path.Clean(f) != f || path.Dir(f) != RunDir {
		return ""
	}
	return f
}

// sourceScript runs "$@" with the environment file $0 sourced. A file that
// is gone (the sandbox removed it) is said on stderr, and the command runs
// anyway: the sandbox must stay usable.
const sourceScript = `if [ -r "$0" ]; then . "$0" || exit 126; else echo "agentkernel: $0 is missing: this command runs without the environment the sandbox was claimed with" >&2; fi; exec "$@"`

// withEnvFile wraps command so that it runs with file sourced.
func withEnvFile(file string, command []string) []string {
	return append([]string{"sh", "-c", sourceScript, file}, command...)
}

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
	return []string{"sh", "-c", deliverScript, "agentkernel-claim", file, strconv.FormatInt(idle, 10), idleFile}
}

// envFileContent renders env and the named secrets as shell that exports
// them. Values are single-quoted, so the shell reads them as they are:
// quotes, newlines, $ and backquotes included.
func envFileContent(env []corev1.EnvVar, secretNames []string, values map[string]string) ([]byte, error) {
	var b bytes.Buffer
	put := func(name, value string) error {
		if err := ValidateEnvName(name); err != nil {
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
			return nil, fmt.Errorf("no value for --secret-env %s", n)
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
