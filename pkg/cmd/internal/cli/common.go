package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Clients is what every cluster-facing command completes from the factory.
// Options embed it, so that Namespace, Clientset and Explain read as their
// own. Its Complete keeps kubectl's word for "fill in from the factory";
// an Options with a Complete of its own (the Options pattern's, taking the
// command and its arguments) shadows it and calls it by the embedded
// field's name, o.Clients.Complete(f), so the call says which runs. An
// Options without one uses the promoted o.Complete(f).
type Clients struct {
	Namespace string
	// ExplicitNamespace is true when -n was given (kubeconfig's default otherwise).
	ExplicitNamespace bool
	Server            string
	Clientset         kubernetes.Interface
	Config            *restclient.Config
	Executor          sandbox.Executor
	// Snapshots reaches the cluster's CSI VolumeSnapshots.
	Snapshots snapclient.Interface
	// Resume is what RunningSandbox does with a suspended sandbox.
	Resume ResumePolicy
}

func (c *Clients) Complete(f cmdutil.Factory) error {
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
		c.Executor = sandbox.RemoteExecutor{}
	}
	if c.Snapshots == nil {
		if c.Snapshots, err = snapclient.NewForConfig(c.Config); err != nil {
			return err
		}
	}
	return nil
}

// Explain turns API and transport errors into one line that says what to do.
func (c *Clients) Explain(err error, namespace string) error {
	if err == nil {
		return nil
	}
	var sig *SignalError
	switch {
	case errors.As(err, &sig):
		return err
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case apierrors.IsForbidden(err):
		switch msg := err.Error(); {
		case strings.Contains(msg, "violates PodSecurity"):
			return fmt.Errorf("%w (the namespace's Pod Security admission refused the sandbox)", err)
		case strings.Contains(msg, "exceeded quota"), strings.Contains(msg, "usage per Container"), strings.Contains(msg, "usage per Pod"):
			return fmt.Errorf("%w (the namespace's quota or limits; see what fits with: kubectl agentkernel doctor -n %s)", err, namespace)
		}
		if namespace == "" {
			return fmt.Errorf("%w; ask a cluster admin for access (kubectl agentkernel rbac --all-namespaces prints the ClusterRole it takes), or check with: kubectl auth can-i --list", err)
		}
		return fmt.Errorf("%w; ask a cluster admin for access (kubectl agentkernel rbac -n %s prints the Role it takes), or check with: kubectl auth can-i --list -n %s", err, namespace, namespace)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server at %s did not accept your credentials (%v); log in again or check your kubeconfig", c.Server, err)
	case isUnreachable(err):
		return fmt.Errorf("cannot reach the Kubernetes API server at %s: %v; check that the cluster is up and your --context/--kubeconfig point at it (kubectl cluster-info)", c.Server, rootCause(err))
	}
	return err
}

// ExplainStream is Explain for an error that ended a stream (exec, cp): a
// connection that broke after the command started says so, and that the
// command's outcome is unknown, rather than blaming the cluster's address.
func (c *Clients) ExplainStream(err error, namespace string) error {
	if isLostConnection(err) {
		return fmt.Errorf("the connection to the sandbox broke while the command ran (%v); its outcome is unknown: check the sandbox's state before retrying", rootCause(err))
	}
	return c.Explain(err, namespace)
}

// isUnreachable: the API server could not be reached at all (dial, DNS,
// refused, TLS handshake timeout) — as opposed to a connection that broke.
func isUnreachable(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	var urlErr *url.Error
	return errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		(errors.As(err, &urlErr) && urlErr.Timeout() && !isLostConnection(err))
}

// isLostConnection: an established connection was reset or closed early.
func isLostConnection(err error) bool {
	return utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) || errors.Is(err, syscall.EPIPE)
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

// RunningSandbox resolves a sandbox name to its Pod (one GET for a cold
// sandbox) and checks it can exec. A suspended persistent sandbox is
// resumed first (saying so on Resume.Notice), unless Resume.NoResume.
func (c *Clients) RunningSandbox(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	notice := c.Resume.Notice
	if notice == nil {
		notice = io.Discard
	}
	pod, _, err := sandbox.Awake(ctx, c.Clientset, namespace, name, c.Resume.NoResume, c.Resume.Options(name, c.PrepareEgress(cmdutil.DryRunNone, notice)))
	if err != nil {
		return nil, c.Explain(err, namespace)
	}
	if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
		return nil, fmt.Errorf("sandbox %q in namespace %q is %s, not running; see: kubectl describe pod %s -n %s",
			name, namespace, sandbox.Status(pod), pod.Name, namespace)
	}
	// A sandbox whose claim never finished lacks its environment: nothing
	// runs in it as if it were whole.
	if err := sandbox.ClaimUnfinished(pod, time.Now()); err != nil {
		return nil, err
	}
	return pod, nil
}

// ExecIn runs commands in pod's sandbox container.
func (c *Clients) ExecIn(pod *corev1.Pod) *sandbox.PodExec {
	return sandbox.NewPodExec(c.Config, c.Clientset.CoreV1().RESTClient(), c.Executor, pod)
}

// validateRunner is a command's Options in kubectl's pattern: checks
// without I/O, then the work.
type validateRunner interface {
	Validate() error
	Run(ctx context.Context) error
}

// CompleteValidateRun is the RunE of every command in kubectl's Options
// pattern: complete (flags, arguments, clients), validate, run with the
// command's context, stopping at the first error.
func CompleteValidateRun(o validateRunner, complete func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := complete(cmd, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
}
