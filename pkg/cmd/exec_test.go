package cmd

import (
	"context"
	"errors"
	"io"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	cmdtesting "k8s.io/kubectl/pkg/cmd/testing"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// recordingExecutor stands in for the exec connection: it records each
// request and answers with canned output and error.
type recordingExecutor struct {
	mu     sync.Mutex
	urls   []*url.URL
	stdins []string
	tty    []bool
	out    string
	err    error
}

func (e *recordingExecutor) Execute(u *url.URL, c *restclient.Config, stdin io.Reader, stdout, stderr io.Writer, tty bool, q remotecommand.TerminalSizeQueue) error {
	return e.ExecuteWithContext(context.Background(), u, c, stdin, stdout, stderr, tty, q)
}

func (e *recordingExecutor) ExecuteWithContext(_ context.Context, u *url.URL, _ *restclient.Config, stdin io.Reader, stdout, _ io.Writer, tty bool, _ remotecommand.TerminalSizeQueue) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.urls = append(e.urls, u)
	in := ""
	if stdin != nil {
		b, _ := io.ReadAll(stdin)
		in = string(b)
	}
	e.stdins = append(e.stdins, in)
	e.tty = append(e.tty, tty)
	if stdout != nil {
		_, _ = io.WriteString(stdout, e.out)
	}
	return e.err
}

func sandboxPod(name string, mutate func(*corev1.Pod)) *corev1.Pod {
	s := sandbox.NewSpec(name, "test")
	p := s.Pod()
	p.Status.Phase = corev1.PodRunning
	if mutate != nil {
		mutate(p)
	}
	return p
}

func runExec(t *testing.T, tf *cmdtesting.TestFactory, ex *recordingExecutor, stdin string, args ...string) (string, error) {
	t.Helper()
	streams, in, out, _ := genericiooptions.NewTestIOStreams()
	in.WriteString(stdin)
	o := NewExecOptions(streams)
	o.Executor = ex
	cmd := newCmdExec(tf, o)
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestExecRequest(t *testing.T) {
	cases := map[string]struct {
		args    []string
		command []string
		stdin   string
	}{
		"plain":       {[]string{"demo", "--", "ls", "-la"}, []string{"ls", "-la"}, ""},
		"stdin":       {[]string{"-i", "demo", "--", "cat"}, []string{"cat"}, "true"},
		"env and dir": {[]string{"demo", "-e", "A=1", "-e", "B=x y", "-w", "/workspace/repo", "--", "make"}, []string{"env", "A=1", "B=x y", "sh", "-c", `cd -- "$0" || exit 126; exec "$@"`, "/workspace/repo", "make"}, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ex := &recordingExecutor{out: "hello"}
			out, err := runExec(t, clitest.Factory(t, sandboxPod("demo", nil)), ex, "input", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if out != "hello" {
				t.Errorf("stdout = %q", out)
			}
			u := ex.urls[0]
			if u.Path != "/api/v1/namespaces/test/pods/agentkernel-demo/exec" {
				t.Errorf("path = %s", u.Path)
			}
			q := u.Query()
			if q.Get("container") != sandbox.ContainerName || q.Get("stdin") != tc.stdin || q.Get("stdout") != "true" || q.Get("tty") != "" {
				t.Errorf("query = %v", q)
			}
			if !reflect.DeepEqual(q["command"], tc.command) {
				t.Errorf("command = %q, want %q", q["command"], tc.command)
			}
			if tc.stdin == "true" && ex.stdins[0] != "input" {
				t.Errorf("stdin passed = %q", ex.stdins[0])
			}
		})
	}
}

func TestExecExitCodes(t *testing.T) {
	for _, code := range []int{1, 42, 127, 255} {
		ex := &recordingExecutor{err: utilexec.CodeExitError{Err: errors.New("exit"), Code: code}}
		_, err := runExec(t, clitest.Factory(t, sandboxPod("demo", nil)), ex, "", "demo", "--", "false")
		var exit *ExitError
		if !errors.As(err, &exit) || exit.Code != code {
			t.Errorf("code %d: err = %v", code, err)
		}
	}
	// A dropped connection is an error, never exit 0 and never the command's code.
	ex := &recordingExecutor{err: errors.New("connection reset by peer")}
	_, err := runExec(t, clitest.Factory(t, sandboxPod("demo", nil)), ex, "", "demo", "--", "true")
	var exit *ExitError
	if err == nil || errors.As(err, &exit) || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("err = %v", err)
	}
}

func TestExecBadInput(t *testing.T) {
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agentkernel-foreign", Namespace: "test"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	pending := sandboxPod("slow", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending })
	// Our labels and name, but a ReplicaSet's Pod: a Deployment template copied ours.
	spoofed := sandboxPod("spoof", func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", UID: "rs", Controller: ptr.To(true)}}
	})
	tf := clitest.Factory(t, sandboxPod("demo", nil), foreign, pending, spoofed)
	cases := map[string]struct {
		args []string
		want string
	}{
		"no dash":      {[]string{"demo", "ls"}, "put '--' between"},
		"no command":   {[]string{"demo", "--"}, "no command after '--'"},
		"no name":      {[]string{}, "needs a sandbox name"},
		"two names":    {[]string{"a", "b", "--", "ls"}, "exactly one sandbox name"},
		"bad name":     {[]string{"Demo", "--", "ls"}, "invalid sandbox name"},
		"tty no stdin": {[]string{"-t", "demo", "--", "sh"}, "-t needs -i"},
		"bad env":      {[]string{"-e", "1A=b", "demo", "--", "sh"}, "invalid environment variable name"},
		"missing":      {[]string{"ghost", "--", "ls"}, `sandbox "ghost" not found in namespace "test"; list them with: kubectl agentkernel list -A`},
		"not ours":     {[]string{"foreign", "--", "ls"}, "is not sandbox \"foreign\""},
		"not running":  {[]string{"slow", "--", "ls"}, "not running"},
		"spoofed":      {[]string{"spoof", "--", "ls"}, `controlled by ReplicaSet "web-1"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ex := &recordingExecutor{}
			_, err := runExec(t, tf, ex, "", tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if len(ex.urls) != 0 {
				t.Fatal("bad input must not reach the sandbox")
			}
		})
	}
}

func TestExecuteExitCode(t *testing.T) {
	streams, _, _, errOut := genericiooptions.NewTestIOStreams()
	if code := Execute(context.Background(), streams, []string{"version", "-o", "xml"}); code != 1 {
		t.Fatalf("bad output format exited %d", code)
	}
	if !strings.HasPrefix(errOut.String(), "error: --output") {
		t.Fatalf("stderr = %q", errOut.String())
	}
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	if code := Execute(context.Background(), streams, []string{"version", "-o", "json"}); code != 0 || !strings.Contains(out.String(), `"version"`) {
		t.Fatalf("version -o json: %d %q", code, out.String())
	}
}
