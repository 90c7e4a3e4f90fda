package sandbox

import "fmt"

// NotFoundError: no sandbox of that name in the namespace.
type NotFoundError struct {
	Name, Namespace string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("sandbox %q not found in namespace %q; list them with: kubectl agentkernel list -A", e.Name, e.Namespace)
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
	return fmt.Sprintf("pod %q in namespace %q is not sandbox %q (%s); kubectl agentkernel only works on the sandboxes it created",
		e.PodName, e.Namespace, e.Name, reason)
}

// AlreadyExistsError: create was asked for a name already taken.
type AlreadyExistsError struct {
	Name, Namespace string
}

func (e *AlreadyExistsError) Error() string {
	return fmt.Sprintf("sandbox %q already exists in namespace %q; pick another name, or delete it first: kubectl agentkernel delete %s -n %s",
		e.Name, e.Namespace, e.Name, e.Namespace)
}

// StartError: the sandbox will not start, with the cluster's own reason.
type StartError struct {
	Name, Namespace string
	Reason          string // e.g. ImagePullBackOff, Unschedulable
	Message         string
}

func (e *StartError) Error() string {
	msg := fmt.Sprintf("sandbox %q in namespace %q cannot start: %s", e.Name, e.Namespace, e.Reason)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if hint := e.Hint(); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// Hint says what usually fixes Reason, or "".
func (e *StartError) Hint() string { return startHints[e.Reason] }

var startHints = map[string]string{
	"ErrImagePull":               "check the --image name and that the cluster can pull it",
	"ImagePullBackOff":           "check the --image name and that the cluster can pull it",
	"InvalidImageName":           "fix the --image reference",
	"ErrImageNeverPull":          "the image is not on the node and the pull policy forbids pulling it",
	"Unschedulable":              "no node fits; lower --cpu/--memory or fix --node-selector/--runtime-class",
	"CreateContainerConfigError": "the image or settings conflict with the sandbox's security context, e.g. an image whose user is root",
	"RunContainerError":          "the image needs /bin/sh, which keeps the sandbox running",
	"CrashLoopBackOff":           "the image needs /bin/sh, which keeps the sandbox running",
}
