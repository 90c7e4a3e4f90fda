package e2b

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// maxMessage bounds an error message: it may quote a name or a cluster's
// answer, which the client chose or the cluster said.
const maxMessage = 2048

// Error is an answer in E2B's error shape ({code, message}): the SDK maps
// its status to its own errors (400 InvalidArgumentError, 401
// AuthenticationError, 404 NotFoundError / SandboxNotFoundError, 409 on
// pause "already paused", 429 RateLimitError, 502 a sandbox timeout, 507
// NotEnoughSpaceError; anything else SandboxError).
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err in E2B's shape, its status from what it is about;
// a permission serve's identity lacks says how to get the plugin's Role.
func (s *Server) writeError(w http.ResponseWriter, err error) {
	e := asError(err)
	if e.Status == http.StatusForbidden {
		e = &Error{Status: e.Status, Message: e.Message + " (serve's Kubernetes identity lacks a permission; see what the plugin needs: kubectl agentkernel rbac -n " + s.o.Namespace + ")"}
	}
	if e.Status >= 500 && e.Status != http.StatusNotImplemented {
		// The cluster's failure, not the client's: the operator sees it too.
		s.o.Log.Warn("request failed", "status", e.Status, "error", untrusted.Line(e.Message, maxMessage))
	}
	writeErrorShape(w, e)
}

func writeErrorShape(w http.ResponseWriter, e *Error) {
	msg := untrusted.Line(e.Message, maxMessage)
	writeJSON(w, e.Status, api.Error{Code: int32(e.Status), Message: msg})
}

// asError gives err its E2B status: a sandbox that is not there is 404 (the
// SDK's SandboxNotFoundError), a refused choice 400, the API server's
// answers their own kind; the rest 500.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var notFound *sandbox.NotFoundError
	var notOurs *sandbox.NotManagedError
	var field sandbox.FieldError
	switch {
	case errors.As(err, &notFound):
		return &Error{Status: http.StatusNotFound, Message: err.Error()}
	case errors.As(err, &notOurs):
		return &Error{Status: http.StatusNotFound, Message: err.Error()}
	case errors.As(err, &field):
		return &Error{Status: http.StatusBadRequest, Message: err.Error()}
	case apierrors.IsNotFound(err):
		return &Error{Status: http.StatusNotFound, Message: err.Error()}
	case apierrors.IsForbidden(err):
		return &Error{Status: http.StatusForbidden, Message: err.Error()}
	case apierrors.IsTooManyRequests(err):
		return &Error{Status: http.StatusTooManyRequests, Message: err.Error()}
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return &Error{Status: http.StatusBadRequest, Message: err.Error()}
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return &Error{Status: http.StatusConflict, Message: err.Error()}
	}
	return &Error{Status: http.StatusInternalServerError, Message: err.Error()}
}
