package mcp

import (
	"fmt"
	"reflect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
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

// errorSteps word the next step after a pkg/sandbox error that names none
// itself (no field.Step), as this server's tools, keyed by the error's
// type. nil: the error names its own step, or there is none to take. A
// test checks that every error type of pkg/sandbox has a row.
var errorSteps = map[string]func(err error) string{
	"NotFoundError":      nil, // HintListSandboxes
	"AlreadyExistsError": nil, // HintDeleteFirst
	"StartError":         nil, // its fields
	"NotManagedError":    nil, // not this server's: nothing an agent can do
	"HalfClaimedError":   nil, // HintReclaim
	"ShellBrokenError":   nil, // exec streams instead
	"SuspendedError": func(error) string {
		return "; resume it with the resume_sandbox tool (any command on it resumes it too)"
	},
	"NotPersistentError": func(error) string {
		return "; create_sandbox with persist true makes a sandbox that can be"
	},
	"WorkspaceGoneError": func(error) string {
		return "; create another with create_sandbox"
	},
	"AdmissionError":    nil, // names its field, which only the server's user sets
	"ServerTooOldError": nil, // nothing an agent can do
	"NoUsageError":      nil, // usage is no tool of this server
}

// errorStep is the words errorSteps has for the first pkg/sandbox error
// in err's chain, or "".
func errorStep(err error) string {
	for _, e := range chain(err) {
		t := reflect.TypeOf(e)
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.PkgPath() != sandboxPkg {
			continue
		}
		if words := errorSteps[t.Name()]; words != nil {
			return words(e)
		}
	}
	return ""
}

var sandboxPkg = reflect.TypeOf(sandbox.Spec{}).PkgPath()

// chain is err and every error it wraps, depth first.
func chain(err error) []error {
	if err == nil {
		return nil
	}
	out := []error{err}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		out = append(out, chain(u.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, chain(e)...)
		}
	}
	return out
}
