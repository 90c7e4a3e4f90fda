package sandbox

import (
	"path"

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

// EnvFilePath is the environment file of a claimed Pod.
func EnvFilePath(podName string) string { return RunDir + "/" + podName + ".env" }

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

// WithEnvFile wraps command so that it runs with file sourced.
func WithEnvFile(file string, command []string) []string {
	return append([]string{"sh", "-c", sourceScript, file}, command...)
}
