package sandbox

import (
	"context"
	"io"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
)

// Executor streams one command to a Pod's exec endpoint. The context ends
// the stream: a cancelled command returns at once and leaves no goroutine
// behind. kubectl's exec.DefaultRemoteExecutor satisfies it, and so do the
// recording fakes of the command tests.
type Executor interface {
	ExecuteWithContext(ctx context.Context, url *url.URL, config *restclient.Config, stdin io.Reader, stdout, stderr io.Writer, tty bool, sizeQueue remotecommand.TerminalSizeQueue) error
}

// RemoteExecutor is the Executor of a real cluster: WebSocket, falling back
// to SPDY when the API server (or a proxy before it) cannot upgrade, exactly
// as kubectl exec does.
type RemoteExecutor struct{}

// ExecuteWithContext implements Executor.
func (RemoteExecutor) ExecuteWithContext(ctx context.Context, u *url.URL, config *restclient.Config, stdin io.Reader, stdout, stderr io.Writer, tty bool, sizeQueue remotecommand.TerminalSizeQueue) error {
	spdy, err := remotecommand.NewSPDYExecutor(config, "POST", u)
	if err != nil {
		return err
	}
	// RFC 6455 requires GET for the WebSocket handshake.
	ws, err := remotecommand.NewWebSocketExecutor(config, "GET", u.String())
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{
		Stdin: stdin, Stdout: stdout, Stderr: stderr, Tty: tty, TerminalSizeQueue: sizeQueue,
	})
}

// Streams are the local ends of one exec.
type Streams struct {
	Stdin          io.Reader // nil: the command gets no stdin
	Stdout, Stderr io.Writer // nil: discarded by the API server, never sent
	TTY            bool      // stdout and stderr arrive merged on Stdout
	SizeQueue      remotecommand.TerminalSizeQueue
}

// PodExec runs commands in the sandbox container of one Pod. It does not
// read the Pod: callers look it up once (Find) and pass its name, so an exec
// costs one GET and one stream.
type PodExec struct {
	Config    *restclient.Config
	Client    restclient.Interface // the core/v1 REST client (clientset.CoreV1().RESTClient())
	Executor  Executor             // RemoteExecutor{} unless a test records requests
	Namespace string
	Pod       string
	// EnvFile, if set, is sourced before every command: the environment a
	// claim brought to a pool member (EnvFileOf; claimenv.go).
	EnvFile string

	// unfinished refuses every command: the Pod's claim has not finished
	// (ClaimUnfinished), so it lacks the environment it was claimed with.
	unfinished error
}

// NewPodExec returns the PodExec of pod, with the environment file its
// claim left (if any): build every PodExec this way, so that every caller
// runs commands with the sandbox's whole environment.
func NewPodExec(config *restclient.Config, client restclient.Interface, executor Executor, pod *corev1.Pod) *PodExec {
	return &PodExec{Config: config, Client: client, Executor: executor, Namespace: pod.Namespace, Pod: pod.Name, EnvFile: EnvFileOf(pod),
		unfinished: ClaimUnfinished(pod, time.Now())}
}

// Stream runs command with the given streams; see Runner for the error. A
// sandbox whose claim has not finished runs nothing: *HalfClaimedError.
func (e *PodExec) Stream(ctx context.Context, command []string, s Streams) error {
	if e.unfinished != nil {
		return e.unfinished
	}
	if e.EnvFile != "" {
		command = WithEnvFile(e.EnvFile, command)
	}
	u := e.Client.Post().
		Resource("pods").Namespace(e.Namespace).Name(e.Pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: ContainerName,
			Command:   command,
			Stdin:     s.Stdin != nil,
			Stdout:    s.Stdout != nil,
			Stderr:    s.Stderr != nil && !s.TTY,
			TTY:       s.TTY,
		}, scheme.ParameterCodec).URL()
	ex := e.Executor
	if ex == nil {
		ex = RemoteExecutor{}
	}
	stderr := s.Stderr
	if s.TTY {
		stderr = nil // a terminal merges both onto stdout
	}
	return ex.ExecuteWithContext(ctx, u, e.Config, s.Stdin, s.Stdout, stderr, s.TTY, s.SizeQueue)
}

// Run implements Runner.
func (e *PodExec) Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return e.Stream(ctx, command, Streams{Stdin: stdin, Stdout: stdout, Stderr: stderr})
}

// Delivering returns a copy of e for the exec that finishes a pool claim:
// it sources no environment file (the file is being written), and it runs
// although the claim has not finished (it is what finishes it).
func (e PodExec) Delivering() *PodExec {
	e.EnvFile, e.unfinished = "", nil
	return &e
}
