package cmd

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest/fake"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/kubectl/pkg/cmd/portforward"
	cmdtesting "k8s.io/kubectl/pkg/cmd/testing"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// withHandler makes tf answer the requests handle takes (non-nil
// response) itself, and everything else as before.
func withHandler(tf *cmdtesting.TestFactory, handle func(*http.Request) *http.Response) *cmdtesting.TestFactory {
	rc := tf.Client.(*fake.RESTClient)
	prev := rc.Client
	rc.Client = fake.CreateHTTPClient(func(req *http.Request) (*http.Response, error) {
		if resp := handle(req); resp != nil {
			return resp, nil
		}
		return prev.Do(req)
	})
	return tf
}

// agentPod is a running sandbox with a main process.
func agentPod(name string, mutate func(*corev1.Pod)) *corev1.Pod {
	return sandboxPod(name, func(p *corev1.Pod) {
		p.UID = types.UID("uid-" + name)
		c := &p.Spec.Containers[0]
		c.Stdin, c.TTY = true, true
		if mutate != nil {
			mutate(p)
		}
	})
}

func runInteractive(t *testing.T, cmdFor func(genericiooptions.IOStreams) interface {
	SetArgs([]string)
	ExecuteContext(context.Context) error
}, stdin string, args ...string) (string, string, error) {
	t.Helper()
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	in.WriteString(stdin)
	cmd := cmdFor(streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestAttachRequestAndExitCode(t *testing.T) {
	ended := agentPod("done", func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: sandbox.ContainerName, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 7}}}}
	})
	finished := agentPod("finished", func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.ContainerStatuses = ended.Status.ContainerStatuses
	})
	tf := clitest.Factory(t, agentPod("work", nil), ended, finished, sandboxPod("idle", nil))
	attach := func(ex *recordingExecutor, stdin string, args ...string) (string, string, error) {
		return runInteractive(t, func(s genericiooptions.IOStreams) interface {
			SetArgs([]string)
			ExecuteContext(context.Context) error
		} {
			o := NewAttachOptions(s)
			o.Executor = ex
			o.ExitTimeout = time.Second
			return newCmdAttach(tf, o)
		}, stdin, args...)
	}

	ex := &recordingExecutor{out: "agent says hi"}
	out, errOut, err := attach(ex, "typed\n", "work")
	// Our stdin (not a terminal) ended: the session ends, the agent runs on.
	if err != nil || out != "agent says hi" || !strings.Contains(errOut, "Unable to use a TTY") || !strings.Contains(errOut, "keeps running") {
		t.Fatalf("out %q err %v stderr %q", out, err, errOut)
	}
	u := ex.urls[0]
	q := u.Query()
	if u.Path != "/api/v1/namespaces/test/pods/agentkernel-work/attach" || q.Get("container") != sandbox.ContainerName ||
		q.Get("stdin") != "true" || q.Get("stdout") != "true" || q.Get("tty") == "true" || ex.stdins[0] != "typed\n" {
		t.Fatalf("attach request %s %v stdin %q", u.Path, q, ex.stdins[0])
	}

	// The main process ended with 7: so does attach.
	_, _, err = attach(&recordingExecutor{}, "", "done")
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 7 {
		t.Fatalf("ended main process: %v", err)
	}

	// -i=false watches the output only.
	// Without stdin the session ends only when the process does; here it
	// ends at once, and the process, still running, never reports an exit.
	ex = &recordingExecutor{}
	if _, _, err := attach(ex, "ignored", "work", "-i=false"); err == nil || !strings.Contains(err.Error(), "not reported within 1s") {
		t.Fatalf("-i=false, the process still running: %v", err)
	}
	if q := ex.urls[0].Query(); q.Get("stdin") != "" {
		t.Fatalf("-i=false sent stdin: %v", q)
	}

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no main process": {[]string{"idle"}, "runs no main process to attach to"},
		"ended":           {[]string{"finished"}, `the main process of sandbox "finished" has ended with exit code 7`},
		"missing":         {[]string{"ghost"}, `sandbox "ghost" not found`},
		"no name":         {nil, "exactly one sandbox name"},
		"bad keys":        {[]string{"work", "--detach-keys", "ctrl-Ω"}, "--detach-keys"},
	} {
		ex := &recordingExecutor{}
		if _, _, err := attach(ex, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
		if name != "no name" && len(ex.urls) != 0 {
			t.Errorf("%s reached the sandbox", name)
		}
	}
}

func TestShellIsALoginShellInTheWorkspace(t *testing.T) {
	tf := clitest.Factory(t, sandboxPod("demo", nil))
	ex := &recordingExecutor{out: "$ ", err: utilexec.CodeExitError{Err: errors.New("exit"), Code: 3}}
	_, _, err := runInteractive(t, func(s genericiooptions.IOStreams) interface {
		SetArgs([]string)
		ExecuteContext(context.Context) error
	} {
		o := NewShellOptions(s)
		o.Executor = ex
		return newCmdShell(tf, o)
	}, "exit 3\n", "demo")
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("the shell's exit code: %v", err)
	}
	q := ex.urls[0].Query()
	if want := []string{"sh", "-c", loginShellScript, "/workspace"}; !reflect.DeepEqual(q["command"], want) || q.Get("stdin") != "true" {
		t.Fatalf("shell exec %v", q)
	}
	if ex.stdins[0] != "exit 3\n" {
		t.Fatalf("stdin %q", ex.stdins[0])
	}
}

func TestLogsThroughTheSandbox(t *testing.T) {
	var mu sync.Mutex
	var asked []url.Values
	tf := withHandler(clitest.Factory(t, agentPod("work", nil)), func(req *http.Request) *http.Response {
		if !strings.HasSuffix(req.URL.Path, "/log") {
			return nil
		}
		mu.Lock()
		asked = append(asked, req.URL.Query())
		mu.Unlock()
		if req.URL.Path != "/api/v1/namespaces/test/pods/agentkernel-work/log" {
			return &http.Response{StatusCode: http.StatusNotFound, Header: cmdtesting.DefaultHeader(), Body: io.NopCloser(strings.NewReader(""))}
		}
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": []string{"text/plain"}}, Body: io.NopCloser(strings.NewReader("line 1\nline 2\n"))}
	})
	logs := func(args ...string) (string, error) {
		out, _, err := runInteractive(t, func(s genericiooptions.IOStreams) interface {
			SetArgs([]string)
			ExecuteContext(context.Context) error
		} {
			return newCmdLogs(tf, NewLogsOptions(s))
		}, "", args...)
		return out, err
	}
	out, err := logs("work", "--tail", "2", "-f", "--timestamps")
	if err != nil || out != "line 1\nline 2\n" {
		t.Fatalf("%q %v", out, err)
	}
	q := asked[0]
	if q.Get("container") != sandbox.ContainerName || q.Get("follow") != "true" || q.Get("tailLines") != "2" || q.Get("timestamps") != "true" {
		t.Fatalf("log request %v", q)
	}
	if _, err := logs("ghost"); err == nil || !strings.Contains(err.Error(), `sandbox "ghost" not found`) {
		t.Fatalf("missing sandbox: %v", err)
	}
	if _, err := logs("work", "--since", "1m", "--since-time", "2026-01-01T00:00:00Z"); err == nil {
		t.Fatal("--since with --since-time accepted")
	}
	if len(asked) != 1 {
		t.Fatalf("bad input reached the API: %d log requests", len(asked))
	}
}

// recordingForwarder stands in for kubectl's port forwarder.
type recordingForwarder struct {
	url   *url.URL
	ports []string
	addr  []string
}

func (f *recordingForwarder) ForwardPorts(method string, u *url.URL, o portforward.PortForwardOptions) error {
	f.url, f.ports, f.addr = u, o.Ports, o.Address
	return nil
}

func TestPortForwardToTheSandbox(t *testing.T) {
	udp := sandboxPod("dns", func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}}
	})
	tf := clitest.Factory(t, sandboxPod("work", nil), udp)
	forward := func(fw *recordingForwarder, args ...string) error {
		_, _, err := runInteractive(t, func(s genericiooptions.IOStreams) interface {
			SetArgs([]string)
			ExecuteContext(context.Context) error
		} {
			o := NewPortForwardOptions(s)
			o.kubectl.PortForwarder = fw
			return newCmdPortForward(tf, o)
		}, "", args...)
		return err
	}
	fw := &recordingForwarder{}
	if err := forward(fw, "work", "3000", "8080:3000", ":9229", "--address", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if fw.url.Path != "/api/v1/namespaces/test/pods/agentkernel-work/portforward" || !reflect.DeepEqual(fw.ports, []string{"3000:3000", "8080:3000", ":9229"}) || !reflect.DeepEqual(fw.addr, []string{"127.0.0.1"}) {
		t.Fatalf("forwarded %v %v %v", fw.url, fw.ports, fw.addr)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"udp only":  {[]string{"dns", "53"}, "declared for UDP only"},
		"no port":   {[]string{"work"}, "at least one port"},
		"bad port":  {[]string{"work", "70000"}, `port "70000"`},
		"zero":      {[]string{"work", "0"}, `port "0"`},
		"missing":   {[]string{"ghost", "80"}, `sandbox "ghost" not found`},
		"bad local": {[]string{"work", "x:80"}, `port "x:80"`},
	} {
		fw := &recordingForwarder{}
		if err := forward(fw, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
		if fw.url != nil {
			t.Errorf("%s: forwarded anyway", name)
		}
	}
}

func FuzzParsePortPair(f *testing.F) {
	for _, s := range []string{"80", "8080:80", ":80", "0:80", "a:b", "::", "65536", "-1", "+80", "80:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		local, remote, err := parsePortPair(s)
		if err != nil {
			return
		}
		if remote < 1 || remote > 65535 || strings.ContainsAny(local, ":+- ") {
			t.Fatalf("%q parsed as %q %d", s, local, remote)
		}
	})
}

// Spoofed Pods (our labels, a controller's ownership) are never reached by
// attach, logs or port-forward: they go through sandbox.Find.
func TestInteractiveCommandsRefuseSpoofedPods(t *testing.T) {
	spoof := agentPod("spoof", func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "rs", Controller: ptr.To(true)}}
	})
	tf := clitest.Factory(t, spoof)
	ex := &recordingExecutor{}
	_, _, err := runInteractive(t, func(s genericiooptions.IOStreams) interface {
		SetArgs([]string)
		ExecuteContext(context.Context) error
	} {
		o := NewAttachOptions(s)
		o.Executor = ex
		return newCmdAttach(tf, o)
	}, "", "spoof")
	if err == nil || !strings.Contains(err.Error(), `controlled by ReplicaSet "web"`) || len(ex.urls) != 0 {
		t.Fatalf("attach: %v", err)
	}
	fw := &recordingForwarder{}
	_, _, err = runInteractive(t, func(s genericiooptions.IOStreams) interface {
		SetArgs([]string)
		ExecuteContext(context.Context) error
	} {
		o := NewPortForwardOptions(s)
		o.kubectl.PortForwarder = fw
		return newCmdPortForward(tf, o)
	}, "", "spoof", "80")
	if err == nil || fw.url != nil {
		t.Fatalf("port-forward: %v", err)
	}
	_, _, err = runInteractive(t, func(s genericiooptions.IOStreams) interface {
		SetArgs([]string)
		ExecuteContext(context.Context) error
	} {
		return newCmdLogs(tf, NewLogsOptions(s))
	}, "", "spoof")
	if err == nil || !strings.Contains(err.Error(), "controlled by") {
		t.Fatalf("logs: %v", err)
	}
}
