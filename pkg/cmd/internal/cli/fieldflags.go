package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// fieldFlags is the one table from the domain's fields (field.Error) to
// the flags that set them. The domain speaks fields so that the MCP
// server, which has no flags, can word the same errors as its arguments;
// the command line puts its flags back here.
var fieldFlags = map[string]string{
	"image":                  "image",
	"imagePullPolicy":        "image-pull-policy",
	"uid":                    "uid",
	"ttl":                    "ttl",
	"idleTimeout":            "idle-timeout",
	"cpu":                    "cpu",
	"memory":                 "memory",
	"ephemeralStorage":       "ephemeral-storage",
	"profile":                "profile",
	"network":                "network",
	"readOnlyRoot":           "read-only",
	"runtimeClassName":       "runtime-class",
	"serviceAccountName":     "service-account",
	"nodeSelector":           "node-selector",
	"labels":                 "label",
	"env":                    "env",
	"secretEnvNames":         "secret-env",
	"ports":                  "port",
	"allowEgress":            "allow-egress",
	"dns":                    "dns",
	"allowHosts":             "allow-host",
	"command":                "command",
	"agent":                  "agent",
	"size":                   "size",
	"maxBytes":               "max-bytes",
	"maxFiles":               "max-files",
	"timeout":                "timeout",
	"selector":               "selector",
	"workspaceSize":          "persist",
	"storageClass":           "storage-class",
	"retain":                 "retain",
	"acceptAdmissionChanges": "accept-admission-changes",
}

// fieldHints word the domain's next steps (field.Hint) as commands, put
// after what happened: the one table of the commands our errors suggest.
var fieldHints = map[field.Hint]func(s field.Step) string{
	field.HintNoPool: func(field.Step) string { return " (a sandbox without a pool: kubectl agentkernel create NAME)" },
	field.HintListSandboxes: func(field.Step) string {
		return "; list them with: kubectl agentkernel list -A"
	},
	field.HintDeleteFirst: func(s field.Step) string {
		return fmt.Sprintf(", or delete it first: kubectl agentkernel delete %s -n %s", s.Name, s.Namespace)
	},
	field.HintRemoveLeft: func(s field.Step) string {
		return fmt.Sprintf(" (remove it with: kubectl agentkernel delete %s -n %s)", s.Name, s.Namespace)
	},
	field.HintReclaim: func(s field.Step) string {
		return fmt.Sprintf("; remove it with: kubectl agentkernel delete %s -n %s, or claim the name again (which replaces it) with: kubectl agentkernel create %s -n %s --pool %s ...",
			s.Name, s.Namespace, s.Name, s.Namespace, s.Pool)
	},
	field.HintClientDryRun: func(field.Step) string {
		return "; see every object with --dry-run=client -o yaml, or create the namespace first"
	},
	field.HintWaitSandbox: func(s field.Step) string {
		return fmt.Sprintf("; wait longer with --timeout, or look at: kubectl describe pod %s -n %s", s.Name, s.Namespace)
	},
	field.HintListPools: func(s field.Step) string {
		return fmt.Sprintf("; list them with: kubectl agentkernel pool list -A, or make it with: kubectl agentkernel pool create %s --size N", s.Name)
	},
	field.HintPoolExists: func(s field.Step) string {
		return fmt.Sprintf("; resize it with: kubectl agentkernel pool scale %s --size N -n %s, or delete it first: kubectl agentkernel pool delete %s -n %s",
			s.Name, s.Namespace, s.Name, s.Namespace)
	},
	field.HintRemovePool: func(s field.Step) string {
		return fmt.Sprintf(" (remove with: kubectl agentkernel pool delete %s -n %s)", s.Name, s.Namespace)
	},
	field.HintTopUp: func(s field.Step) string {
		return fmt.Sprintf(" (kubectl agentkernel pool list -n %s tops it up)", s.Namespace)
	},
	field.HintCheckMember: func(s field.Step) string {
		return fmt.Sprintf("; check with: kubectl get pod -n %s %s --show-labels", s.Namespace, s.Name)
	},
	field.HintScalePool: func(s field.Step) string {
		return fmt.Sprintf("; scale it with: kubectl agentkernel pool scale %s --size N", s.Name)
	},
	field.HintFixSize: func(s field.Step) string {
		return fmt.Sprintf("; fix it with: kubectl agentkernel pool scale %s --size N", s.Name)
	},
	field.HintWaitPool: func(s field.Step) string {
		return fmt.Sprintf("; wait longer with --timeout, or see: kubectl agentkernel pool list -n %s", s.Namespace)
	},
	field.HintWaitClaim: func(s field.Step) string {
		return fmt.Sprintf("; wait longer with --timeout, see why with: kubectl agentkernel pool list -n %s, or claim without --pool-wait to create the sandbox cold", s.Namespace)
	},
	field.HintPoolForAgent: func(s field.Step) string {
		return fmt.Sprintf(" (a pool for it: kubectl agentkernel pool create NAME --agent %s --size N)", s.Value)
	},
	field.HintSecretOnClaim: func(s field.Step) string {
		return fmt.Sprintf("; give it when claiming: kubectl agentkernel create NAME --pool %s --secret-env %s", s.Pool, s.Value)
	},
}

// stepOf is the command line's words for a next step.
func stepOf(s field.Step) string {
	if words, ok := fieldHints[s.Hint]; ok {
		return words(s)
	}
	return ""
}

// flagOf is the flag, with its dashes, that sets a field.
func flagOf(f string) string {
	if flag, ok := fieldFlags[f]; ok {
		return "--" + flag
	}
	return f // not set by a flag: the field's own name says it best
}

// fieldOfFlag is the field a flag sets, or "".
func fieldOfFlag(flag string) string {
	for f, fl := range fieldFlags {
		if fl == flag {
			return f
		}
	}
	return ""
}

// SpeakFlags makes every command in the tree return its errors in
// inFlagWords, so the user reads flags where the domain named fields.
// Commands that tests build alone call it themselves; calling it twice
// words nothing twice.
func SpeakFlags(c *cobra.Command) *cobra.Command {
	if run := c.RunE; run != nil {
		c.RunE = func(c *cobra.Command, args []string) error {
			return FlagWordsError(run(c, args))
		}
	}
	for _, sub := range c.Commands() {
		SpeakFlags(sub)
	}
	return c
}

// FlagWordsError is err in inFlagWords, still unwrapping to err (an
// ExitError, a field.Error) for whoever asks.
func FlagWordsError(err error) error {
	var worded *wordedError
	if err == nil || errors.As(err, &worded) {
		return err // worded already: a second time would repeat the hints
	}
	if msg := inFlagWords(err); msg != err.Error() {
		return &wordedError{msg: msg, err: err}
	}
	return err
}

type wordedError struct {
	msg string
	err error
}

func (e *wordedError) Error() string { return e.msg }
func (e *wordedError) Unwrap() error { return e.err }

// inFlagWords is err as the command line says it: the fields the domain
// names become the flags that set them, with the hints that name our
// commands. Everything else in the message is kept word for word.
func inFlagWords(err error) string {
	return field.Say(err, flagOf, stepOf)
}
