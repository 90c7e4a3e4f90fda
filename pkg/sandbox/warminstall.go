package sandbox

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// A warm install is an agent's install step run by the sandbox's own PID 1
// when the Pod starts, before the sandbox counts as ready: a pool member
// claimed later has its agent already. It runs in the container, not over
// exec by whoever made the Pod, because members are made (and refilled)
// by any client and no process of ours waits for them to start.
//
// Readiness is the kubelet's word: the container has a startup probe that
// passes only once the install has finished and left InstalledFile, so the
// Pod is not Ready (and a claim never takes it) before. A failed install
// ends PID 1 with the failure as its termination message; with
// restartPolicy Never the Pod is then Failed, which pool list shows and
// pool commands replace. An install that outlasts WarmInstallTimeout
// fails the probe, and the kubelet ends the container the same way.
//
// The install never sees a credential: only a Spec without secretEnvNames
// may have one (a pool member's; a claim's credentials arrive later over
// exec, into RunDir, once the member is Ready and the install is over).

// InstalledFile is left by PID 1 once the warm install succeeded.
const InstalledFile = RunDir + "/installed"

// InstallLogFile keeps what the warm install printed, for whoever claims
// the sandbox to read; its tail is the termination message if it fails.
const InstallLogFile = TmpDir + "/.agentkernel-install.log"

// InstallFailedPrefix starts the termination message of a sandbox whose
// warm install failed.
const InstallFailedPrefix = "agentkernel: install failed:"

// ReasonInstallFailed is the StartError reason of a sandbox whose warm
// install failed.
const ReasonInstallFailed = "InstallFailed"

// WarmInstallTimeout bounds a warm install: the startup probe's period
// times its failure threshold.
const WarmInstallTimeout = 30 * 60 // seconds

// installedProbePeriod is how often the kubelet looks for InstalledFile.
// Each look is an exec in the container (a runc exec on the node): every
// second, a pool warming twenty members costs the node twenty a second.
// On the real-node test's emulated guest, a member's install took 7.9 min
// (pool create) where a cold run's install and whole conversation took
// 5.7; looking every 5 s, 6.2 min. A member is ready at most this much
// later than its install ended, after minutes of install.
const installedProbePeriod = 5 // seconds

// warmInstallScript runs $3 (the install) as PID 1's child before the
// pid1Script loop. In the background and waited for, so that SIGTERM (a
// pool scaled down, a member deleted) ends PID 1 at once rather than after
// the install. The marker is written only after a clean exit.
const warmInstallScript = `trap 'exit 0' TERM INT HUP
/bin/sh -c "$3" </dev/null >` + InstallLogFile + ` 2>&1 & i=$!
wait "$i"; st=$?
if [ "$st" != 0 ]; then
	{ echo "` + InstallFailedPrefix + ` exit code $st (the install step of the pool's agent; its output is in ` + InstallLogFile + `):"; tail -c 2000 ` + InstallLogFile + ` 2>/dev/null; } > /dev/termination-log 2>/dev/null
	exit "$st"
fi
: > ` + InstalledFile + `
`

// pid1Name is PID 1's $0 (what ps shows).
const pid1Name = "agentkernel-pid1"

// warmInstallCommand is pid1Command with the install before the loop.
func warmInstallCommand(idle int64, install string) []string {
	return []string{"/bin/sh", "-c", warmInstallScript + pid1Script, pid1Name, strconv.FormatInt(idle, 10), IdleFile, install}
}

// installedProbe passes once InstalledFile exists; ':' and the redirect
// are the shell's own, so any image with /bin/sh has what it needs. Every
// field is set to what the API server would default it to, so the Pod it
// stores compares equal to the one asked for.
func installedProbe() *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sh", "-c", ": < " + InstalledFile}}},
		PeriodSeconds:    installedProbePeriod,
		TimeoutSeconds:   1,
		SuccessThreshold: 1,
		FailureThreshold: WarmInstallTimeout / installedProbePeriod,
	}
}

// WarmInstalled returns the install step the sandbox's PID 1 ran when it
// started, and whether it did. Once the Pod is Ready (Started), the
// install succeeded: the startup probe passed.
func WarmInstalled(pod *corev1.Pod) (string, bool) {
	c := sandboxContainer(pod)
	if c == nil || c.StartupProbe == nil || len(c.Command) != 7 {
		return "", false
	}
	cmd := c.Command
	if !slices.Equal(cmd[:4], []string{"/bin/sh", "-c", warmInstallScript + pid1Script, pid1Name}) || cmd[5] != IdleFile {
		return "", false
	}
	return cmd[6], true
}

// InstallFailure returns why a sandbox's warm install failed, as its PID 1
// said, or "" if it did not.
func InstallFailure(pod *corev1.Pod) string {
	for _, s := range pod.Status.ContainerStatuses {
		if t := s.State.Terminated; s.Name == ContainerName && t != nil && strings.HasPrefix(t.Message, InstallFailedPrefix) {
			return strings.TrimSpace(t.Message)
		}
	}
	return ""
}

func (s *Spec) validateWarmInstall() error {
	switch {
	case s.WarmInstall == "":
		return nil
	case strings.TrimSpace(s.WarmInstall) == "":
		return field.Invalid("warmInstall", "the warm install step is blank")
	case len(s.Command) > 0:
		return field.Invalid("warmInstall", "a warm install runs before the idle loop; a sandbox with a main process (`command`) installs over exec instead")
	case len(s.SecretEnvNames) > 0:
		return field.Invalid("warmInstall", "a warm install runs with no credentials; a sandbox with `secretEnvNames` installs over exec once they are there")
	}
	return nil
}

// startupProbe is the container's: only a warm install has one.
func (s *Spec) startupProbe() *corev1.Probe {
	if s.WarmInstall == "" || len(s.Command) > 0 {
		return nil
	}
	return installedProbe()
}
