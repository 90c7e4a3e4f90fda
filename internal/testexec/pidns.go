package testexec

import (
	"os/exec"
	"testing"
)

// PidNamespace is a command prefix that runs a command in a pid namespace
// of its own, with its own /proc, as in a container: a PID 1 that waits,
// and the command as its child. The warm shell retires when a process it
// cannot tell from one its command left starts while a command runs, and
// on a busy machine that shares its pid namespace such processes come and
// go. Nil where user namespaces are not allowed.
func PidNamespace(t testing.TB) []string { return PidNamespaceWith(t, "") }

// PidNamespaceWith is PidNamespace whose PID 1 first runs prelude (shell
// code), as a container's other processes would be there before an exec.
func PidNamespaceWith(t testing.TB, prelude string) []string {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return nil
	}
	wrap := []string{unshare, "--kill-child", "-Urpf", "--mount-proc", "/bin/sh", "-c", prelude + `exec 3<&0; "$@" <&3 3<&- & wait $!`, "init"}
	if out, err := exec.Command(wrap[0], append(wrap[1:], "echo", "ok")...).CombinedOutput(); err != nil || string(out) != "ok\n" {
		t.Logf("no pid namespace for the shell (%v, %q): it runs in this machine's", err, out)
		return nil
	}
	return wrap
}
