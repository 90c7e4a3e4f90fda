package cli

import (
	"fmt"
	"io"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// WarnAdmission tells the user what the cluster's admission changed about
// a sandbox's Pod that Create kept: every change, and for those that
// weaken its hardening (kept only with --accept-admission-changes) that
// the hardening no longer holds as asked.
func WarnAdmission(w io.Writer, created *sandbox.Created) {
	if created == nil {
		return
	}
	for _, c := range created.AdmissionChanges {
		if c.Weakens {
			fmt.Fprintf(w, "Warning: the cluster's admission weakened the sandbox (kept: --accept-admission-changes): %s\n", c)
		} else {
			fmt.Fprintf(w, "Warning: the cluster's admission changed the sandbox (its hardening holds): %s\n", c)
		}
	}
}
