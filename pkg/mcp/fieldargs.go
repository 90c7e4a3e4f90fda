package mcp

import (
	"errors"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// fieldArgs is the one table from the domain's fields (field.Error) to
// this server's tool arguments, so an agent reads its own words. A field
// an agent cannot set maps to notSettable: the server's user chose it.
var fieldArgs = map[string]string{
	"image":                  "image",
	"imagePullPolicy":        notSettable,
	"uid":                    notSettable,
	"ttl":                    "ttl",
	"idleTimeout":            notSettable,
	"cpu":                    "cpu",
	"memory":                 "memory",
	"ephemeralStorage":       "ephemeral_storage",
	"profile":                "profile",
	"network":                "network",
	"readOnlyRoot":           "read_only_root",
	"runtimeClassName":       notSettable,
	"serviceAccountName":     notSettable,
	"nodeSelector":           notSettable,
	"labels":                 notSettable,
	"env":                    "env",
	"secretEnvNames":         notSettable,
	"ports":                  notSettable,
	"allowEgress":            notSettable,
	"dns":                    notSettable,
	"allowHosts":             notSettable,
	"command":                "command",
	"agent":                  notSettable,
	"size":                   "size",
	"maxBytes":               "max_bytes",
	"maxFiles":               "max_entries",
	"timeout":                "timeout_seconds",
	"selector":               notSettable,
	"workspaceSize":          "workspace_size",
	"storageClass":           "storage_class",
	"retain":                 "retain",
	"acceptAdmissionChanges": notSettable,
}

// notSettable marks a field that no tool argument sets.
const notSettable = ""

// argOf is the argument that sets a field; a field no argument sets is
// named as the server's setting.
func argOf(f string) string {
	if a := fieldArgs[f]; a != "" {
		return a
	}
	return "the server's " + f
}

// inArgWords is err with the fields the domain names worded as this
// server's arguments, and its next steps as this server's tools.
func inArgWords(err error) error {
	var worded *argWordsError
	if err == nil || errors.As(err, &worded) {
		return err // worded already: a second time would repeat the hints
	}
	msg := field.Say(err, argOf, stepOf) + errorStep(err)
	if msg == err.Error() {
		return err
	}
	return &argWordsError{msg: msg, err: err}
}

// argWordsError keeps the error it words, for whoever unwraps it.
type argWordsError struct {
	msg string
	err error
}

func (e *argWordsError) Error() string { return e.msg }
func (e *argWordsError) Unwrap() error { return e.err }
