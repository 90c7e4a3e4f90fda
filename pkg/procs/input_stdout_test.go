package procs

import (
	"strconv"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// SendInput's exec holds its stdout until all the input has gone to the
// process: containerd's CRI exec cuts an exec's stdin once its stdout
// ends (containerd#13934). dash and busybox keep the shell around the
// script's last `cat` today, so this guards the script against an `exec`
// (as the upload and cp scripts had) or a shell that execs its last command.
func TestSendInputKeepsStdoutWhileCopying(t *testing.T) {
	for name, r := range runners(t) {
		t.Run(name, func(t *testing.T) {
			p := newProcs(t, r)
			proc, err := p.Start(ctxT(t), Spec{Cmd: "sh", Args: []string{"-c", "cat >/dev/null"}, Stdin: true})
			if err != nil {
				t.Fatal(err)
			}
			command := p.command(inputScript, "pid:"+strconv.Itoa(proc.PID))
			if r.Path != "" {
				command = append([]string{"env", "PATH=" + r.Path}, command...)
			}
			testexec.StdoutOutlivesStdin(t, command, []byte("x"))
		})
	}
}
