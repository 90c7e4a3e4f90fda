package e2b

import (
	"net/http"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
)

// The operations below have no counterpart in a plugin that installs
// nothing in the cluster: each answers E2B's error shape saying so, after
// the sandbox is known to exist (an unknown one is still 404).

func (s *Server) unsupported(w http.ResponseWriter, r *http.Request, id, what string) {
	if _, _, err := s.running(r.Context(), id); err != nil {
		s.writeError(w, err)
		return
	}
	s.writeError(w, errorf(http.StatusNotImplemented, "%s", what))
}

// GetSandboxMetrics: serve keeps no metrics.
func (s *Server) GetSandboxMetrics(w http.ResponseWriter, r *http.Request, id api.SandboxID, _ api.GetSandboxMetricsParams) {
	s.unsupported(w, r, id, "sandbox metrics are not supported by serve (it installs no metrics collector); see resource use with: kubectl top pod -n "+s.o.Namespace)
}

// GetSandboxLogs: a sandbox has no envd whose logs there would be.
func (s *Server) GetSandboxLogs(w http.ResponseWriter, r *http.Request, id api.SandboxID, _ api.GetSandboxLogsParams) {
	s.unsupported(w, r, id, "sandbox logs are not supported by serve; read a sandbox's output with: kubectl agentkernel logs -n "+s.o.Namespace+" "+id)
}

// UpdateSandboxNetwork: a sandbox's network is its NetworkPolicy, fixed
// when it is made.
func (s *Server) UpdateSandboxNetwork(w http.ResponseWriter, r *http.Request, id api.SandboxID) {
	s.unsupported(w, r, id, "changing a running sandbox's network is not supported by serve: its network is fixed when it is made (serve's --profile, --network, --allow-host)")
}

// ForkSandbox: a running sandbox's memory cannot be copied.
func (s *Server) ForkSandbox(w http.ResponseWriter, r *http.Request, id api.SandboxID) {
	s.unsupported(w, r, id, "forking a sandbox is not supported by serve")
}

// SnapshotSandbox: E2B's snapshots are templates, which serve has not.
func (s *Server) SnapshotSandbox(w http.ResponseWriter, r *http.Request, id api.SandboxID) {
	s.unsupported(w, r, id, "snapshots are not supported by serve; snapshot a persistent sandbox's workspace with: kubectl agentkernel snapshot")
}
