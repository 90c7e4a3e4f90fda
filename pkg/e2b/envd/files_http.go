package envd

import (
	"encoding/json"
	"net/http"
)

// httpError is the spec's Error: {"message": ..., "code": status}. The SDK
// shows the message and maps the status (404 → FileNotFoundError, 400 →
// InvalidArgumentError, 507 → NotEnoughSpaceError, 502 → the sandbox is
// gone).
type httpError struct {
	Message string `json:"message"`
	Code    int    `json:"code"`
}

func writeHTTPError(w http.ResponseWriter, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.Header().Del("Content-Disposition")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(httpError{Message: message, Code: code})
}

// httpStatus is a failed script as /files answers it: a failed exec is
// 502 (the SDK's "sandbox timed out or was killed"), anything else 500.
func (r scriptResult) httpStatus() int {
	if !r.exited {
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// httpMessage is what a failed script's error says.
func (r scriptResult) httpMessage(what string) string {
	return r.connectError(what).Message()
}
