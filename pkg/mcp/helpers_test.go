package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

const testNamespace = "agents"

// fakeCluster is the one fake API server (internal/fakecluster) with a
// kubelet: lifting a Pod's scheduling gate makes it Running and Ready.
func fakeCluster(objects ...runtime.Object) *fake.Clientset {
	cs := fakecluster.New(objects...)
	fakecluster.StartWhenUngated(cs, runPod)
	return cs
}

// runPod gives a Pod the status of a running, ready sandbox.
func runPod(pod *corev1.Pod) {
	pod.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		StartTime:  &metav1.Time{Time: time.Now()},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}
}

// existingSandbox is a running sandbox made by someone else (another
// session, the CLI).
func existingSandbox(name string, labels map[string]string) *corev1.Pod {
	spec := sandbox.NewSpec(name, testNamespace)
	spec.Labels = labels
	pod := spec.Pod()
	pod.UID = types.UID("other-" + name)
	runPod(pod)
	return pod
}

// hostExecutor stands in for the API server's exec endpoint: it runs the
// requested command on this machine, so the sandbox-side scripts of
// write_file, read_file, list_directory and the copies really run (paths in
// tests are absolute paths of temporary directories).
type hostExecutor struct {
	mu    sync.Mutex
	calls []execCall
	// before, if set, runs before each command; an error ends the exec.
	before func(pod string, command []string) error
	// pidNS, if set, runs each stream in a pid namespace of its own
	// (testexec.PidNamespace): tests that count the warm shell's streams
	// must not see it retire for another process of this busy machine.
	pidNS []string
}

type execCall struct {
	pod     string
	command []string
}

func (h *hostExecutor) ExecuteWithContext(ctx context.Context, u *url.URL, _ *restclient.Config, stdin io.Reader, stdout, stderr io.Writer, tty bool, _ remotecommand.TerminalSizeQueue) error {
	command := u.Query()["command"]
	pod := path.Base(path.Dir(u.Path))
	h.mu.Lock()
	h.calls = append(h.calls, execCall{pod, command})
	before := h.before
	h.mu.Unlock()
	if tty {
		return errors.New("the MCP server never asks for a terminal")
	}
	if stdin == nil && stdout == nil && stderr == nil {
		// As the API server answers such an exec.
		return errors.New("Internal error occurred: unable to upgrade connection: you must specify at least 1 of stdin, stdout, stderr")
	}
	if before != nil {
		if err := before(pod, command); err != nil {
			return err
		}
	}
	run := append(append([]string(nil), h.pidNS...), command...)
	c := exec.CommandContext(ctx, run[0], run[1:]...)
	c.Env = os.Environ()
	c.Stdout, c.Stderr = stdout, stderr
	c.WaitDelay = time.Second
	return testexec.RunLikeExec(ctx, c, stdin)
}

func (h *hostExecutor) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

// fixture is a server on a fake cluster and a client connected to it over
// an in-memory transport.
type fixture struct {
	t       *testing.T
	cs      *fake.Clientset
	exec    *hostExecutor
	session *sdk.ClientSession
	log     *testexec.SyncBuffer
	served  chan error
	cancel  context.CancelFunc
}

// testOptions are the options of a server on cs; change them before start.
func testOptions(cs *fake.Clientset, ex sandbox.Executor) Options {
	spec := sandbox.NewSpec("placeholder", testNamespace)
	spec.TTL = time.Hour
	rest, err := restclient.RESTClientFor(&restclient.Config{
		Host:    "https://cluster.invalid",
		APIPath: "/api",
		ContentConfig: restclient.ContentConfig{
			GroupVersion:         &corev1.SchemeGroupVersion,
			NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
		},
	})
	if err != nil {
		panic(err)
	}
	return Options{
		Namespace:    testNamespace,
		Clientset:    cs,
		Config:       &restclient.Config{Host: "https://cluster.invalid"},
		RESTClient:   rest,
		Executor:     ex,
		Spec:         spec,
		MaxSandboxes: 5,
		Limits:       DefaultLimits(),
		StartTimeout: 30 * time.Second,
		Version:      "test",
	}
}

// start serves o and connects a client; everything stops with the test.
func start(t *testing.T, cs *fake.Clientset, ex *hostExecutor, change func(*Options)) *fixture {
	t.Helper()
	o := testOptions(cs, ex)
	log := &testexec.SyncBuffer{}
	o.Log = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if change != nil {
		change(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	serverT, clientT := sdk.NewInMemoryTransports()
	f := &fixture{t: t, cs: cs, exec: ex, log: log, served: make(chan error, 1), cancel: cancel}
	go func() { f.served <- srv.Serve(ctx, serverT) }()
	client := sdk.NewClient(&sdk.Implementation{Name: "test-client", Version: "v0"}, nil)
	f.session, err = client.Connect(ctx, clientT, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = f.session.Close()
		cancel()
		select {
		case err := <-f.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("the server did not stop")
		}
	})
	return f
}

// call calls a tool and returns its raw result.
func (f *fixture) call(name string, args any) *sdk.CallToolResult {
	f.t.Helper()
	res, err := f.session.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		f.t.Fatalf("%s: protocol error: %v", name, err)
	}
	return res
}

// ok calls a tool that must succeed and decodes its structured result.
func ok[Out any](f *fixture, name string, args any) Out {
	f.t.Helper()
	res := f.call(name, args)
	if res.IsError {
		f.t.Fatalf("%s(%v) failed: %s", name, args, text(res))
	}
	var out Out
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		f.t.Fatalf("%s: decoding %s: %v", name, b, err)
	}
	return out
}

// fails calls a tool that must fail as a tool error saying want.
func (f *fixture) fails(name string, args any, want string) {
	f.t.Helper()
	res := f.call(name, args)
	if !res.IsError {
		f.t.Fatalf("%s(%v) succeeded, want an error saying %q: %s", name, args, want, text(res))
	}
	if got := text(res); !strings.Contains(got, want) {
		f.t.Fatalf("%s(%v) error %q does not say %q", name, args, got, want)
	}
}

func text(res *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*sdk.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// pods lists the Pods in the fake cluster's namespace.
func (f *fixture) pods() []corev1.Pod {
	f.t.Helper()
	list, err := f.cs.CoreV1().Pods(testNamespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return list.Items
}

func (f *fixture) pod(name string) *corev1.Pod {
	f.t.Helper()
	p, err := f.cs.CoreV1().Pods(testNamespace).Get(context.Background(), sandbox.PodName(name), metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("pod of sandbox %s: %v", name, err)
	}
	return p
}

// stop disconnects the client and waits until the server has cleaned up.
func (f *fixture) stop() error {
	f.t.Helper()
	if err := f.session.Close(); err != nil {
		f.t.Fatal(err)
	}
	select {
	case err := <-f.served:
		f.served <- err // for the test's cleanup
		return err
	case <-time.After(time.Minute):
		f.t.Fatal("the server did not stop after the client disconnected")
	}
	return nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("%s: not within 30s", what)
	}
}
