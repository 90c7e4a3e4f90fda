package cmd

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// halfClaimedPod is sandbox "demo" as a claimant killed after its claim's
// write left it: claimed from pool "warm", its environment never delivered.
func halfClaimedPod(at time.Time) *corev1.Pod {
	return sandboxPod("demo", func(p *corev1.Pod) {
		p.Name = sandbox.PoolMemberPrefix("warm") + "x7k2q"
		p.Labels[sandbox.LabelPool] = "warm"
		p.Annotations[sandbox.AnnotationEnvFile] = sandbox.RunDir + "/" + p.Name + ".env"
		p.Annotations[sandbox.AnnotationClaimState] = sandbox.ClaimPending
		p.Annotations[sandbox.AnnotationClaimedAt] = at.UTC().Format(time.RFC3339)
	})
}

// exec, shell and cp in a sandbox whose claim never finished run nothing
// and say, in one line, what happened and what to do.
func TestCommandsRefuseAHalfClaimedSandbox(t *testing.T) {
	pod := halfClaimedPod(time.Now().Add(-time.Hour))
	run := map[string]func(ex *recordingExecutor) error{
		"exec": func(ex *recordingExecutor) error {
			_, err := runExec(t, clitest.Factory(t, pod), ex, "", "demo", "--", "sh", "-c", `echo "$TOKEN"`)
			return err
		},
		"shell": func(ex *recordingExecutor) error {
			streams, _, _, _ := genericiooptions.NewTestIOStreams()
			o := NewShellOptions(streams)
			o.Executor = ex
			cmd := newCmdShell(clitest.Factory(t, pod), o)
			cmd.SetArgs([]string{"demo"})
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			return cmd.ExecuteContext(context.Background())
		},
		"cp": func(ex *recordingExecutor) error {
			streams, _, _, _ := genericiooptions.NewTestIOStreams()
			o := NewCpOptions(streams)
			o.Executor = ex
			cmd := newCmdCp(clitest.Factory(t, pod), o)
			cmd.SetArgs([]string{"demo:/workspace/notes.txt", t.TempDir() + "/notes.txt"})
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			return cmd.ExecuteContext(context.Background())
		},
	}
	for name, f := range run {
		t.Run(name, func(t *testing.T) {
			ex := &recordingExecutor{}
			err := f(ex)
			if len(ex.urls) != 0 {
				t.Fatalf("%s ran something in a half-claimed sandbox: %v", name, ex.urls)
			}
			if err == nil {
				t.Fatalf("%s succeeded", name)
			}
			msg := err.Error()
			for _, w := range []string{`sandbox "demo"`, `pool "warm"`, "never finished", "kubectl agentkernel delete demo", "kubectl agentkernel create demo -n test --pool warm"} {
				if !strings.Contains(msg, w) {
					t.Errorf("%s: the refusal lacks %q: %s", name, w, msg)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("%s: more than one line: %q", name, msg)
			}
		})
	}
}
