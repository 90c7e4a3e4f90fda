package sandbox

import (
	"fmt"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// NotFoundError: no sandbox of that name in the namespace.
type NotFoundError struct {
	Name, Namespace string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("sandbox %q not found in namespace %q", e.Name, e.Namespace)
}

// NextStep: see which sandboxes there are.
func (e *NotFoundError) NextStep() field.Step {
	return field.Step{Hint: field.HintListSandboxes, Name: e.Name, Namespace: e.Namespace}
}

// NotManagedError: a Pod with the sandbox's name exists but this plugin did
// not create it. The plugin never touches such a Pod.
type NotManagedError struct {
	Name, Namespace, PodName string
	Reason                   string // why the Pod is not one of ours
}

func (e *NotManagedError) Error() string {
	reason := e.Reason
	if reason == "" {
		reason = "it lacks the label " + ManagedSelector
	}
	return fmt.Sprintf("pod %q in namespace %q is not sandbox %q (%s); %s only works on the sandboxes it created",
		e.PodName, e.Namespace, e.Name, reason, Product)
}

// AlreadyExistsError: create was asked for a name already taken.
type AlreadyExistsError struct {
	Name, Namespace string
}

func (e *AlreadyExistsError) Error() string {
	return fmt.Sprintf("sandbox %q already exists in namespace %q; pick another name", e.Name, e.Namespace)
}

// NextStep: or delete it first.
func (e *AlreadyExistsError) NextStep() field.Step {
	return field.Step{Hint: field.HintDeleteFirst, Name: e.Name, Namespace: e.Namespace}
}

// StartError: the sandbox will not start, with the cluster's own reason.
type StartError struct {
	Name, Namespace string
	Reason          string // e.g. ImagePullBackOff, Unschedulable
	Message         string
}

func (e *StartError) Error() string { return e.Words(func(f string) string { return f }) }

// Words is the error with name's name for the fields its advice names.
func (e *StartError) Words(name func(field string) string) string {
	msg := fmt.Sprintf("sandbox %q in namespace %q cannot start: %s", e.Name, e.Namespace, e.Reason)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if hint := e.Hint(name); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// Hint says what usually fixes Reason, or "", with name's name for the
// fields it names.
func (e *StartError) Hint(name func(field string) string) string {
	reason := e.Reason
	if reason == "Unschedulable" && unboundClaim(e.Message) {
		reason = unboundWorkspace // the scheduler waits for the workspace, not a node
	}
	return field.Name(startHints[reason], name)
}

// unboundWorkspace is the advice's key for a sandbox whose workspace
// claim never bound.
const unboundWorkspace = "Unschedulable/workspace"

// StartHintFields are the fields the advice on a waiting reason names,
// which every edge must have a name for.
func StartHintFields() []string {
	var out []string
	for _, hint := range startHints {
		out = append(out, field.Error{Detail: hint}.Named()[1:]...)
	}
	return out
}

// startHints advise on a waiting reason, naming fields in backquotes.
var startHints = map[string]string{
	"ErrImagePull":               "check the `image` name and that the cluster can pull it",
	"ImagePullBackOff":           "check the `image` name and that the cluster can pull it",
	"InvalidImageName":           "fix the `image` reference",
	"ErrImageNeverPull":          "the image is not on the node and the pull policy forbids pulling it",
	"Unschedulable":              "no node fits; lower `cpu`/`memory` or fix `nodeSelector`/`runtimeClassName`",
	unboundWorkspace:             "its workspace did not bind: no volume of its class is free and none can be provisioned; name a `storageClass` that has a provisioner (doctor shows the cluster's default)",
	"CreateContainerConfigError": "the image or settings conflict with the sandbox's security context, e.g. an image whose user is root",
	"RunContainerError":          "the image needs /bin/sh, which keeps the sandbox running",
	"CrashLoopBackOff":           "the image needs /bin/sh, which keeps the sandbox running",
	ReasonInstallFailed:          "the agent's install step failed while the sandbox warmed up, with no credentials; it usually needs egress to a package registry (`network`, `profile`)",
}
