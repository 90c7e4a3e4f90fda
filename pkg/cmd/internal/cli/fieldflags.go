package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// fieldFlags is the one table from the domain's fields (field.Error) to
// the flags that set them. The domain speaks fields so that the MCP
// server, which has no flags, can word the same errors as its arguments;
// the command line puts its flags back here.
var fieldFlags = map[string]string{
	"image":              "image",
	"imagePullPolicy":    "image-pull-policy",
	"uid":                "uid",
	"ttl":                "ttl",
	"idleTimeout":        "idle-timeout",
	"cpu":                "cpu",
	"memory":             "memory",
	"ephemeralStorage":   "ephemeral-storage",
	"profile":            "profile",
	"network":            "network",
	"readOnlyRoot":       "read-only",
	"runtimeClassName":   "runtime-class",
	"serviceAccountName": "service-account",
	"nodeSelector":       "node-selector",
	"labels":             "label",
	"env":                "env",
	"secretEnvNames":     "secret-env",
	"ports":              "port",
	"allowEgress":        "allow-egress",
	"dns":                "dns",
	"allowHosts":         "allow-host",
	"command":            "command",
	"agent":              "agent",
	"size":               "size",
	"maxBytes":           "max-bytes",
	"maxFiles":           "max-files",
	"timeout":            "timeout",
}

// fieldHints word the domain's next steps (field.Hint) as commands.
var fieldHints = map[field.Hint]string{
	field.HintNoPool: " (a sandbox without a pool: kubectl agentkernel create NAME)",
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
	if err == nil {
		return nil
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
	msg := err.Error()
	var fe field.Error
	if !errors.As(err, &fe) {
		return msg
	}
	return strings.Replace(msg, fe.Error(), fe.Words(flagOf)+fieldHints[fe.Hint], 1)
}
