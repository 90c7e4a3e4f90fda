package sandbox

import corev1 "k8s.io/api/core/v1"

// UserName is the name a sandbox's user goes by in its environment.
const UserName = "sandbox"

// userEnv names the sandbox's user for tools that ask the environment
// before the passwd file (Python's getpass, many shells' prompts, npm):
// the UID a sandbox runs as need not be in the image's /etc/passwd (a
// namespace's range on OpenShift, --uid anywhere), and the root
// filesystem may be read-only, so no line can be added there. On
// OpenShift CRI-O adds that line itself (with home $HOME); elsewhere
// tools that insist on getpwuid (ssh) need an image that has the UID.
// $HOME is set with the other paths, so nothing falls back to "/".
func userEnv() []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: "USER", Value: UserName},
		{Name: "LOGNAME", Value: UserName},
	}
}
