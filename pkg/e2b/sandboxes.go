package e2b

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// notFound is E2B's answer for a sandbox that is not there (the SDK's
// SandboxNotFoundError).
func (s *Server) notFound(id string) *Error {
	return errorf(http.StatusNotFound, "sandbox %.80q not found in namespace %s", id, s.o.Namespace)
}

// running finds sandbox id's live Pod. A Pod that has ended (its timeout,
// its idle timeout) is a sandbox that is gone, as in E2B; a persistent
// one's is a paused sandbox: paused is true and pod nil.
func (s *Server) running(ctx context.Context, id string) (pod *corev1.Pod, paused bool, err error) {
	if sandbox.ValidateName(id) != nil {
		return nil, false, s.notFound(id)
	}
	pod, err = sandbox.Find(ctx, s.o.Clientset, s.o.Namespace, id)
	var missing *sandbox.NotFoundError
	switch {
	case errors.As(err, &missing):
		if _, werr := sandbox.FindWorkspace(ctx, s.o.Clientset, s.o.Namespace, id); werr == nil {
			return nil, true, nil
		}
		return nil, false, s.notFound(id)
	case err != nil:
		return nil, false, err
	}
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		if sandbox.IsPersistent(pod) && pod.DeletionTimestamp == nil {
			return nil, true, nil
		}
		return nil, false, s.notFound(id)
	}
	return pod, false, nil
}

// GetSandbox describes a sandbox.
func (s *Server) GetSandbox(w http.ResponseWriter, r *http.Request, id api.SandboxID) {
	pod, paused, err := s.running(r.Context(), id)
	switch {
	case err != nil:
		s.writeError(w, err)
	case paused:
		ss, err := s.suspended(r.Context(), id)
		if err != nil {
			s.writeError(w, err)
			return
		}
		l := s.suspendedListed(ss)
		writeJSON(w, http.StatusOK, api.SandboxDetail{SandboxID: l.SandboxID, TemplateID: l.TemplateID, ClientID: l.ClientID,
			StartedAt: l.StartedAt, EndAt: l.EndAt, EnvdVersion: l.EnvdVersion, Metadata: l.Metadata, State: api.Paused})
	default:
		writeJSON(w, http.StatusOK, s.detail(pod))
	}
}

// suspended is the paused sandbox id, as ListSuspended sees it.
func (s *Server) suspended(ctx context.Context, id string) (*sandbox.SuspendedSandbox, error) {
	pvc, err := sandbox.FindWorkspace(ctx, s.o.Clientset, s.o.Namespace, id)
	if err != nil {
		return nil, s.notFound(id)
	}
	ss := &sandbox.SuspendedSandbox{Workspace: pvc}
	ss.Since, ss.Why, _ = sandbox.SuspendedSince(pvc)
	return ss, nil
}

// KillSandbox deletes a sandbox: its Pod, Secret and policy, and a
// persistent one's workspace. 204; 404 when there is none.
func (s *Server) KillSandbox(w http.ResponseWriter, r *http.Request, id api.SandboxID) {
	if sandbox.ValidateName(id) != nil {
		s.writeError(w, s.notFound(id))
		return
	}
	// A sandbox already being deleted is one killed before: E2B's 404.
	if pod, err := sandbox.Find(r.Context(), s.o.Clientset, s.o.Namespace, id); err == nil && pod.DeletionTimestamp != nil {
		s.writeError(w, s.notFound(id))
		return
	}
	if _, err := sandbox.Delete(r.Context(), s.o.Clientset, s.o.Namespace, id, nil); err != nil {
		var missing *sandbox.NotFoundError
		if errors.As(err, &missing) {
			err = s.notFound(id)
		}
		s.writeError(w, err)
		return
	}
	s.o.Log.Info("killed sandbox", "sandbox", id)
	w.WriteHeader(http.StatusNoContent)
}

// SetSandboxTimeout ends the sandbox timeout seconds from now: later or
// earlier than its present end, at most its ceiling (timeout.go).
func (s *Server) SetSandboxTimeout(w http.ResponseWriter, r *http.Request, id api.SandboxID) {
	var in api.SandboxTimeoutRequest
	if err := decode(r, &in); err != nil {
		s.writeError(w, err)
		return
	}
	if err := s.setTimeout(r.Context(), id, in.Timeout); err != nil {
		s.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ConnectSandbox returns a running sandbox's access token, resuming a
// paused one first. As in E2B, its timeout then ends no sooner than the
// one asked from now (connectTimeout).
func (s *Server) ConnectSandbox(w http.ResponseWriter, r *http.Request, id api.SandboxID) {
	var in api.ConnectSandbox
	if err := decode(r, &in); err != nil {
		s.writeError(w, err)
		return
	}
	out, status, err := s.connect(r.Context(), id, in.Timeout)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, status, out)
}

func (s *Server) connect(ctx context.Context, id string, seconds int32) (*api.Sandbox, int, error) {
	pod, paused, err := s.running(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if !paused {
		if err := s.connectTimeout(ctx, pod, seconds); err != nil {
			return nil, 0, err
		}
		out, err := s.sandboxOf(ctx, pod)
		return out, http.StatusOK, err
	}
	resumed, err := sandbox.Resume(ctx, s.o.Clientset, s.o.Namespace, id, sandbox.ResumeOptions{
		Wait:    true,
		Timeout: s.o.StartTimeout,
		Prepare: s.o.Prepare,
		Admit: func(spec *sandbox.Spec) error {
			if errs := sandbox.Within(&s.o.Spec, spec); len(errs) > 0 {
				return errorf(http.StatusBadRequest, "sandbox %s was made beyond serve's limits (%s): resume it with kubectl agentkernel resume -n %s %s", id, errs[0].Error(), s.o.Namespace, id)
			}
			return nil
		},
	})
	if err != nil {
		return nil, 0, err
	}
	s.o.Log.Info("resumed sandbox", "sandbox", id)
	pod = resumed.Pod
	if ws := resumed.Workspace; ws != nil && ws.Annotations[AnnotationTemplate] != "" {
		// The new Pod gets back what the paused one had (keepDescription).
		if pod, err = s.describeNew(ctx, pod, ws.Annotations[AnnotationTemplate], metadataOf(ws.Annotations), time.Time{}); err != nil {
			return nil, 0, err
		}
	}
	if err := s.connectTimeout(ctx, pod, seconds); err != nil {
		return nil, 0, err
	}
	out, err := s.sandboxOf(ctx, pod)
	return out, http.StatusCreated, err
}

// ResumeSandbox is E2B's older resume: connect, for a paused sandbox only.
func (s *Server) ResumeSandbox(w http.ResponseWriter, r *http.Request, id api.SandboxID) {
	var in api.ResumedSandbox
	if err := decode(r, &in); err != nil {
		s.writeError(w, err)
		return
	}
	if _, paused, err := s.running(r.Context(), id); err != nil {
		s.writeError(w, err)
		return
	} else if !paused {
		s.writeError(w, errorf(http.StatusConflict, "sandbox %s is already running", id))
		return
	}
	seconds := int32(300) // E2B's default timeout
	if in.Timeout != nil {
		seconds = *in.Timeout
	}
	out, status, err := s.connect(r.Context(), id, seconds)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, status, out)
}

// PauseSandbox suspends a persistent sandbox (its workspace stays, its Pod
// goes); a disposable one has nowhere to keep its files, and is refused.
func (s *Server) PauseSandbox(w http.ResponseWriter, r *http.Request, id api.SandboxID) {
	var in api.SandboxPauseRequest
	if err := decode(r, &in); err != nil {
		s.writeError(w, err)
		return
	}
	pod, paused, err := s.running(r.Context(), id)
	switch {
	case err != nil:
		s.writeError(w, err)
		return
	case paused:
		s.writeError(w, errorf(http.StatusConflict, "sandbox %s is already paused", id))
		return
	case !sandbox.IsPersistent(pod):
		s.writeError(w, errorf(http.StatusBadRequest, "sandbox %s cannot be paused: it has no persistent workspace, so its files live and die with its Pod (serve makes disposable sandboxes; a persistent one is made with kubectl agentkernel create --persist)", id))
		return
	}
	if err := s.pause(r.Context(), pod); err != nil {
		s.writeError(w, err)
		return
	}
	s.o.Log.Info("paused sandbox", "sandbox", id)
	w.WriteHeader(http.StatusNoContent)
}

// pause suspends a running persistent sandbox, keeping its description.
func (s *Server) pause(ctx context.Context, pod *corev1.Pod) error {
	if err := s.keepDescription(ctx, pod); err != nil {
		return err
	}
	exec := sandbox.NewPodExec(s.o.Config, s.o.RESTClient, s.o.Executor, pod)
	_, err := sandbox.Suspend(ctx, s.o.Clientset, s.o.Namespace, sandbox.NameOf(pod), sandbox.SuspendOptions{
		// An exec needs a stream: sync's output is nothing worth keeping.
		Flush: func(ctx context.Context, _ *corev1.Pod) error {
			return exec.Run(ctx, []string{"sync"}, nil, io.Discard, io.Discard)
		},
		Timeout: s.o.StartTimeout,
	})
	return err
}

// keepDescription copies a persistent sandbox's template and metadata from
// its Pod, which a pause deletes, to its workspace, which stays: a paused
// sandbox is listed and filtered by them, and its next Pod gets them back.
func (s *Server) keepDescription(ctx context.Context, pod *corev1.Pod) error {
	pvc, err := sandbox.FindWorkspace(ctx, s.o.Clientset, s.o.Namespace, sandbox.NameOf(pod))
	if err != nil {
		return err
	}
	ann := map[string]any{AnnotationTemplate: templateOf(pod.Annotations), AnnotationMetadata: nil}
	if m := pod.Annotations[AnnotationMetadata]; m != "" {
		ann[AnnotationMetadata] = m
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pvc.UID, "annotations": ann}})
	if err != nil {
		return err
	}
	_, err = s.o.Clientset.CoreV1().PersistentVolumeClaims(s.o.Namespace).Patch(ctx, pvc.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}
