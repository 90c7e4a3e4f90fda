package e2b

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A sandbox has two ends. Its ceiling is its Pod's activeDeadlineSeconds,
// its start plus serve's --ttl: the kubelet enforces it even when serve is
// gone, and Kubernetes can shorten it but never lengthen it. Its E2B
// timeout is its end (sandbox.AnnotationEnd, RFC 3339), which setTimeout
// and connect move later or earlier within the ceiling, and which
// EnforceTimeouts enforces (and gc too), as E2B's keep-alive pattern needs.
const AnnotationEnd = sandbox.AnnotationEnd

// DefaultEnforceEvery is how often EnforceTimeouts looks for sandboxes
// whose end has passed: a sandbox outlives its timeout by at most this.
const DefaultEnforceEvery = 5 * time.Second

func (s *Server) now() time.Time {
	if s.o.Now != nil {
		return s.o.Now()
	}
	return time.Now()
}

// endOf is a sandbox's E2B end; ok is false without one (or with one
// someone edited into something else).
func endOf(pod *corev1.Pod) (time.Time, bool) { return sandbox.EndOf(pod) }

// ceiling is the latest a sandbox may end: its Pod's deadline.
func (s *Server) ceiling(pod *corev1.Pod) (time.Time, bool) {
	return sandbox.ExpiresAt(pod, s.now())
}

// within is an end d from now, at most the sandbox's ceiling. E2B too
// caps a sandbox's life rather than refusing a timeout that would pass it
// ("Maximum time a sandbox can be kept alive is 24 hours"): a keep-alive
// setTimeout late in a sandbox's life is not an error, and the end getInfo
// reports says how long it has.
func (s *Server) within(pod *corev1.Pod, d time.Duration) time.Time {
	end := s.now().Add(d)
	if most, ok := s.ceiling(pod); ok && end.After(most) {
		end = most
	}
	return end.UTC().Truncate(time.Second)
}

// setEnd writes a sandbox's E2B end on its Pod, by UID, and marks it
// serve's so that EnforceTimeouts enforces it.
func (s *Server) setEnd(ctx context.Context, pod *corev1.Pod, end time.Time) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":         pod.UID,
		"labels":      map[string]string{LabelServe: "true"},
		"annotations": map[string]string{AnnotationEnd: end.UTC().Format(time.RFC3339)},
	}})
	if err != nil {
		return err
	}
	if _, err := s.o.Clientset.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return s.notFound(sandbox.NameOf(pod))
		}
		return err
	}
	return nil
}

// setTimeout ends the sandbox seconds from now, later or earlier than its
// present end, at most at its ceiling.
func (s *Server) setTimeout(ctx context.Context, id string, seconds int32) error {
	d, err := s.timeout(&seconds)
	if err != nil {
		return err
	}
	pod, paused, err := s.running(ctx, id)
	if err != nil {
		return err
	}
	if paused {
		return errorf(http.StatusBadRequest, "sandbox %s is paused: connect to it (which resumes it) before setting its timeout", id)
	}
	return s.setEnd(ctx, pod, s.within(pod, d))
}

// connectTimeout is the end connect gives a running sandbox: E2B's connect
// only ever extends a timeout. A timeout past the ceiling is capped, not
// refused: the SDK sends its default (300s) on every connect, which must
// not fail against a shorter --ttl.
func (s *Server) connectTimeout(ctx context.Context, pod *corev1.Pod, seconds int32) error {
	if seconds <= 0 {
		return nil // the SDK always sends one; none leaves the end as it is
	}
	end := s.within(pod, time.Duration(seconds)*time.Second)
	if old, ok := endOf(pod); ok && !end.After(old) {
		return nil
	}
	return s.setEnd(ctx, pod, end)
}

// EnforceTimeouts ends, every tick, serve's sandboxes whose E2B end has
// passed, until ctx is done. Errors are logged: the next tick tries again,
// and the ceiling holds meanwhile.
func (s *Server) EnforceTimeouts(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultEnforceEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.EndExpired(ctx); err != nil && ctx.Err() == nil {
			s.o.Log.Warn("ending sandboxes whose timeout passed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// EndExpired ends serve's sandboxes (one list of its labelled Pods in its
// namespace) whose E2B end has passed: a disposable one is killed, as E2B
// kills a sandbox at its timeout; a persistent one is paused, never its
// workspace deleted on a timer (serve refuses E2B's onTimeout "pause" at
// create, so only a sandbox made with create --persist is persistent).
func (s *Server) EndExpired(ctx context.Context) error {
	pods, err := sandbox.List(ctx, s.o.Clientset, s.o.Namespace, LabelServe+"=true")
	if err != nil {
		return err
	}
	now := s.now()
	var errs []error
	for i := range pods {
		pod := &pods[i]
		end, ok := endOf(pod)
		if !ok || now.Before(end) || pod.DeletionTimestamp != nil {
			continue
		}
		id := sandbox.NameOf(pod)
		if sandbox.IsPersistent(pod) {
			if pod.Status.Phase != corev1.PodRunning {
				continue // already ended; a pause needs it running
			}
			if err := s.pause(ctx, pod); err != nil {
				errs = append(errs, err)
				continue
			}
			s.o.Log.Info("paused sandbox: its timeout passed", "sandbox", id, "end", end)
			continue
		}
		if err := sandbox.DeletePod(ctx, s.o.Clientset, pod, nil); err != nil {
			var missing *sandbox.NotFoundError
			if !errors.As(err, &missing) {
				errs = append(errs, err)
			}
			continue
		}
		s.o.Log.Info("killed sandbox: its timeout passed", "sandbox", id, "end", end)
	}
	return errors.Join(errs...)
}
