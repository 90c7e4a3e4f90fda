package mcp

import (
	"fmt"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// stepWords word the domain's next steps (field.Hint) as this server's
// tools and arguments, for an agent to act on; a step only the server's
// user can take (pools, the cluster) is put as asking them.
var stepWords = map[field.Hint]func(s field.Step) string{
	field.HintNoPool: func(field.Step) string { return " (a sandbox without a pool: create_sandbox without pool)" },
	field.HintListSandboxes: func(field.Step) string {
		return "; list them with the list_sandboxes tool"
	},
	field.HintDeleteFirst: func(field.Step) string {
		return ", or delete it first with the delete_sandbox tool"
	},
	field.HintRemoveLeft: func(field.Step) string {
		return " (remove it with the delete_sandbox tool)"
	},
	field.HintReclaim: func(s field.Step) string {
		return fmt.Sprintf("; remove it with the delete_sandbox tool, or create it again with create_sandbox and pool %q (which replaces it)", s.Pool)
	},
	field.HintClientDryRun: func(field.Step) string {
		return "; ask the server's user to create the namespace first"
	},
	field.HintWaitSandbox: func(s field.Step) string {
		return fmt.Sprintf("; try again later, or ask the server's user to look at pod %s in namespace %s", s.Name, s.Namespace)
	},
	field.HintListPools: func(field.Step) string {
		return "; ask the server's user which pools there are, or create_sandbox without pool"
	},
	field.HintPoolExists: func(field.Step) string {
		return "; the server's user resizes or deletes pools"
	},
	field.HintRemovePool: func(field.Step) string {
		return " (ask the server's user to delete the pool)"
	},
	field.HintTopUp: func(field.Step) string {
		return " (the pool is topped up when the server's user lists pools)"
	},
	field.HintCheckMember: func(s field.Step) string {
		return fmt.Sprintf("; ask the server's user to look at pod %s in namespace %s", s.Name, s.Namespace)
	},
	field.HintScalePool: func(field.Step) string {
		return "; ask the server's user to scale it, or create_sandbox without pool"
	},
	field.HintFixSize: func(field.Step) string {
		return "; ask the server's user to scale it again"
	},
	field.HintWaitPool: func(field.Step) string {
		return "; try again later"
	},
	field.HintWaitClaim: func(field.Step) string {
		return "; try again later, or create_sandbox without pool to make the sandbox cold"
	},
	field.HintPoolForAgent: func(s field.Step) string {
		return fmt.Sprintf(" (ask the server's user for a pool of agent %s)", s.Value)
	},
	field.HintSecretOnClaim: func(field.Step) string {
		return "; give it when claiming"
	},
}

// stepOf is this server's words for a next step.
func stepOf(s field.Step) string {
	if words, ok := stepWords[s.Hint]; ok {
		return words(s)
	}
	return ""
}
