package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/kubectl/pkg/cmd/exec"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// clients is what every cluster-facing command completes from the factory.
type clients struct {
	Namespace string
	// ExplicitNamespace is true when -n was given (kubeconfig's default otherwise).
	ExplicitNamespace bool
	Server            string
	Clientset         kubernetes.Interface
	Config            *restclient.Config
	Executor          exec.RemoteExecutor
}

func (c *clients) complete(f cmdutil.Factory) error {
	var err error
	c.Namespace, c.ExplicitNamespace, err = f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return fmt.Errorf("reading kubeconfig: %w", err)
	}
	c.Config, err = f.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("reading kubeconfig: %w (set --kubeconfig, --context or KUBECONFIG)", err)
	}
	c.Server = c.Config.Host
	c.Clientset, err = f.KubernetesClientSet()
	if err != nil {
		return err
	}
	if c.Executor == nil {
		c.Executor = &exec.DefaultRemoteExecutor{}
	}
	return nil
}

// explain turns API and transport errors into one line that says what to do.
func (c *clients) explain(err error, namespace string) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case apierrors.IsForbidden(err):
		if strings.Contains(err.Error(), "violates PodSecurity") {
			return fmt.Errorf("%v (the namespace's Pod Security admission refused the sandbox)", err)
		}
		return fmt.Errorf("%v; ask a cluster admin for access, or check with: kubectl auth can-i --list -n %s", err, namespace)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server at %s did not accept your credentials (%v); log in again or check your kubeconfig", c.Server, err)
	case isUnreachable(err):
		return fmt.Errorf("cannot reach the Kubernetes API server at %s: %v; check that the cluster is up and your --context/--kubeconfig point at it (kubectl cluster-info)", c.Server, rootCause(err))
	}
	return err
}

func isUnreachable(err error) bool {
	var urlErr *url.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		(errors.As(err, &urlErr) && (urlErr.Timeout() || strings.Contains(urlErr.Error(), "connection refused")))
}

func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// runningSandbox resolves a sandbox name to its Pod and checks it can exec.
func (c *clients) runningSandbox(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod, err := sandbox.Get(ctx, c.Clientset, namespace, name)
	if err != nil {
		return nil, c.explain(err, namespace)
	}
	if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
		return nil, fmt.Errorf("sandbox %q in namespace %q is %s, not running; see: kubectl describe pod %s -n %s",
			name, namespace, sandbox.Status(pod), pod.Name, namespace)
	}
	return pod, nil
}

// podRunner runs commands in a sandbox through kubectl's own exec machinery
// (WebSocket with SPDY fallback), for cp.
type podRunner struct {
	clients   *clients
	namespace string
	pod       string
}

func (r *podRunner) Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o := &exec.ExecOptions{
		StreamOptions: exec.StreamOptions{
			Namespace:     r.namespace,
			PodName:       r.pod,
			ContainerName: sandbox.ContainerName,
			Stdin:         stdin != nil,
			Quiet:         true,
			IOStreams:     genericiooptions.IOStreams{In: stdin, Out: stdout, ErrOut: stderr},
		},
		Command:   command,
		Executor:  r.clients.Executor,
		Config:    r.clients.Config,
		PodClient: r.clients.Clientset.CoreV1(),
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return runUntilDone(ctx, o.Run)
}

// runUntilDone runs a stream that takes no context, returning early when ctx
// is cancelled (Ctrl-C) so the process can exit; the stream dies with it.
func runUntilDone(ctx context.Context, run func() error) error {
	done := make(chan error, 1)
	go func() { done <- run() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
