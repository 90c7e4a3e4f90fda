package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// mainScript is PID 1 of a sandbox with a main process (Spec.Command): a
// shell that runs the command as its child and exits with the child's
// status. The command is not exec'd as PID 1 itself: the kernel drops
// default-action signals sent to a namespace's init, so an agent that does
// not handle SIGTERM would ignore the kubelet's, and every delete would wait
// out the grace period. Here SIGTERM (and SIGHUP) are passed on to the
// command, which dies of them as any process does, and PID 1 follows.
//
// $1 is a file to wait for before starting ("" starts at once: see
// HoldCommand); the command follows. A command started with & has its
// stdin replaced by /dev/null, so stdin is passed through fd 3. On a
// terminal the command shares PID 1's process group, which is the
// terminal's foreground group: it reads the terminal as if it were PID 1.
// Started with &, it also has SIGINT and SIGQUIT ignored (POSIX): agents
// read Ctrl-C as a key in raw mode, and a program that wants SIGINT (node
// does) installs its own handler, but one that only keeps the default
// (a plain `cat`) is not interrupted by a ^C typed on the terminal.
const mainScript = `gate=$1; shift
trap 'exit 143' TERM; trap 'exit 129' HUP
if [ -n "$gate" ]; then
	until [ -e "$gate" ]; do sleep 0.2 2>/dev/null || sleep 1; done
fi
exec 3<&0
"$@" <&3 3<&- &
child=$!
exec 3<&-
trap 'kill -TERM "$child" 2>/dev/null' TERM HUP
while :; do
	wait "$child"; status=$?
	kill -0 "$child" 2>/dev/null || exit "$status"
done`

// startGate is the file a held main process waits for.
const startGate = TmpDir + "/.agentkernel-start"

// StartCommand, run in a sandbox made with HoldCommand, starts its main
// process.
var StartCommand = []string{"sh", "-c", `: > "$0"`, startGate}

// containerCommand is what the sandbox container runs.
func (s *Spec) containerCommand() []string {
	if len(s.Command) == 0 && s.WarmInstall != "" {
		return warmInstallCommand(IdleSeconds(s.IdleTimeout), s.WarmInstall)
	}
	if len(s.Command) == 0 {
		return pid1Command(s.IdleTimeout)
	}
	gate := ""
	if s.HoldCommand {
		gate = startGate
	}
	return append([]string{"/bin/sh", "-c", mainScript, "agentkernel-main", gate}, s.Command...)
}

func (s *Spec) validateMain() error {
	switch {
	case len(s.Command) > 0 && s.Command[0] == "":
		return fmt.Errorf("the main process's command is empty")
	case s.TTY && !s.Stdin:
		return fmt.Errorf("a terminal for the main process needs its stdin open too")
	case len(s.Command) == 0 && (s.Stdin || s.TTY || s.HoldCommand):
		return field.Invalid("command", "stdin, a terminal or a held start need a main process (`command`)")
	case len(s.Command) > 0 && s.IdleTimeout > 0:
		// Idle means nothing but PID 1 runs; a main process always does.
		return field.Invalid("idleTimeout", "`idleTimeout` is for sandboxes without a main process; a main process ends the sandbox when it exits (use `ttl` to bound it)")
	}
	return nil
}

// sandboxContainer returns the sandbox container of pod, or nil.
func sandboxContainer(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == ContainerName {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// HasMainProcess reports whether a sandbox runs a main process of its own
// (made with create --command or run --detach), which attach connects to.
// Such a container always keeps its stdin open; the idle loop never does.
func HasMainProcess(pod *corev1.Pod) bool {
	c := sandboxContainer(pod)
	return c != nil && c.Stdin
}

// MainTTY reports whether the sandbox's main process has a terminal.
func MainTTY(pod *corev1.Pod) bool {
	c := sandboxContainer(pod)
	return c != nil && c.TTY
}

// MainExitCode returns the exit code of the sandbox's main process once the
// kubelet has reported that it ended.
func MainExitCode(pod *corev1.Pod) (int, bool) {
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == ContainerName && s.State.Terminated != nil {
			return int(s.State.Terminated.ExitCode), true
		}
	}
	return 0, false
}

// WaitForMainExit watches the sandbox's Pod (by UID) until the kubelet
// reports the end of its main process, and returns its exit code.
func WaitForMainExit(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, timeout time.Duration) (int, error) {
	waitCtx, cancel := watchtools.ContextWithOptionalTimeout(ctx, timeout)
	defer cancel()
	waitCtx, refuse := context.WithCancelCause(waitCtx)
	defer refuse(nil)
	name := NameOf(pod)
	gone := fmt.Errorf("sandbox %q in namespace %q was deleted before its main process's exit code was reported", name, pod.Namespace)
	code := 0
	ended := func(p *corev1.Pod) bool {
		c, ok := MainExitCode(p)
		code = c
		return ok
	}
	precondition := func(store cache.Store) (bool, error) {
		for _, obj := range store.List() {
			if p, ok := obj.(*corev1.Pod); ok && p.UID == pod.UID {
				return ended(p), nil
			}
		}
		return false, gone
	}
	_, err := watchtools.UntilWithSync(waitCtx, podListWatch(cs, pod.Namespace, pod.Name, refuse), &corev1.Pod{}, precondition,
		func(ev watch.Event) (bool, error) {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || p.UID != pod.UID {
				return false, nil
			}
			if ev.Type == watch.Deleted {
				return false, gone
			}
			return ended(p), nil
		})
	if err != nil {
		if ctx.Err() != nil {
			return 0, context.Cause(ctx)
		}
		if err := refused(waitCtx); err != nil {
			return 0, err
		}
		if IsTimeout(err) {
			return 0, fmt.Errorf("sandbox %q in namespace %q: its main process's end was not reported within %s; see: kubectl describe pod %s -n %s",
				name, pod.Namespace, timeout, pod.Name, pod.Namespace)
		}
		return 0, err
	}
	return code, nil
}
