package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// What a one-shot `run` needs beyond Create: a set-up script, and removing
// everything at the end even when the command was interrupted.

// RunSetup runs a shell script in the sandbox (an agent's install step) and
// keeps what it prints, bounded and stripped of control characters, for the
// error if it fails.
func RunSetup(ctx context.Context, r Runner, script string) error {
	var out boundedBuffer
	err := r.Run(ctx, []string{"sh", "-c", script}, nil, &out, &out)
	if err == nil {
		return nil
	}
	msg := tail(strings.TrimSpace(out.String()), 2000)
	if code, ok := ExitCode(err); ok {
		if msg == "" {
			return fmt.Errorf("exit code %d", code)
		}
		return fmt.Errorf("exit code %d: %s", code, msg)
	}
	return err
}

// tail keeps the last n bytes of s, where the error usually is.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + strings.ToValidUTF8(s[len(s)-n:], "")
}

// Delete removes what Create made: the sandbox's Pod, by UID, with its
// normal grace period (PID 1 ends at once on SIGTERM), and the namespace if
// Create made it; the garbage collector takes the Secret and NetworkPolicy.
// Then it waits, up to timeout, until the Pod is gone: terminating reports
// a Pod that was deleted but is not gone yet (a slow kubelet), which is
// not an error. It works on the cleanup context (see WithCleanupContext),
// so it still runs after Ctrl-C; a second interrupt stops it, and an error
// names what may be left.
func (c *Created) Delete(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) (terminating bool, err error) {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	pod := c.Pod
	var errs []error
	deleted := false
	if pod != nil {
		err := DeletePod(cctx, cs, pod, nil)
		var gone *NotFoundError
		switch {
		case errors.As(err, &gone):
		case err != nil:
			errs = append(errs, err)
		default:
			deleted = true
		}
	}
	if ns := c.Namespace; ns != nil && len(errs) == 0 {
		err := cs.CoreV1().Namespaces().Delete(cctx, ns.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(ns.UID)}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		why := "deleting the sandbox failed"
		if cctx.Err() != nil {
			why = "deleting the sandbox was interrupted"
		}
		left := c.namespace()
		if pod != nil {
			return false, fmt.Errorf("%s; sandbox %q may be left in namespace %q (remove it with: kubectl agentkernel delete %s -n %s): %w",
				why, NameOf(pod), left, NameOf(pod), left, errors.Join(errs...))
		}
		return false, fmt.Errorf("%s: %w", why, errors.Join(errs...))
	}
	if deleted {
		// Bounded by timeout, not by cleanupTimeout; a second Ctrl-C ends it.
		if err := WaitForDeleted(cleanupBase(ctx), cs, pod, timeout); err != nil {
			return true, nil
		}
	}
	return false, nil
}
