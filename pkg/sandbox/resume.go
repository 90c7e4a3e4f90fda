package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// ResumeOptions are the choices of Resume.
type ResumeOptions struct {
	// Wait until the resumed sandbox can exec (Timeout bounds it).
	Wait     bool
	Timeout  time.Duration
	Progress func(state string)
	// Prepare is CreateOptions.Prepare: the egress proxy of an allow-host
	// sandbox is installed (or found) before its new Pod is made.
	Prepare func(ctx context.Context, spec *Spec) error
	// Admit, if set, sees the recorded Spec before anything is made and may
	// refuse it (the MCP server holds it to its ceiling).
	Admit func(spec *Spec) error
	// LookupKey reads the keys of the sandbox's Inject from the caller's
	// environment (os.LookupEnv): the key table's entry is the Pod's, and
	// a resumed sandbox's Pod is new.
	LookupKey func(string) (string, bool)
	// Resuming, if set, hears that a suspended sandbox is about to be
	// brought back, with when and why it was suspended (zero if unknown).
	Resuming func(since time.Time, why string)
}

// Resumed is what Resume did.
type Resumed struct {
	Created
	// Running: the sandbox was not suspended (or another resume brought it
	// back first); Pod is its running Pod and nothing was made.
	Running bool
	Since   time.Time
	Why     string
}

// Resume brings a suspended persistent sandbox back: a new Pod from the
// workspace's record, through the same gated create as a new sandbox (so
// it is never without its fence), mounting the same workspace on any
// node. A Pod that ended by itself (TTL, idle) is removed first. Racing
// resumes make one Pod: the Pod's name is the sandbox's, and the loser
// waits for the winner's. A resume racing a delete never starts a Pod on
// a workspace being deleted (workspaceStays).
func Resume(ctx context.Context, cs kubernetes.Interface, namespace, name string, o ResumeOptions) (*Resumed, error) {
	pvc, err := FindWorkspace(ctx, cs, namespace, name)
	if err != nil {
		return nil, err
	}
	spec, err := SpecOf(pvc)
	if err != nil {
		return nil, err
	}
	if o.Admit != nil {
		if err := o.Admit(spec); err != nil {
			return nil, err
		}
	}
	r := &Resumed{}
	r.Since, r.Why, _ = SuspendedSince(pvc)
	pod, err := Find(ctx, cs, namespace, name)
	var notFound *NotFoundError
	switch {
	case errors.As(err, &notFound):
	case err != nil:
		return nil, err
	case pod.DeletionTimestamp != nil:
		if err := WaitForDeleted(ctx, cs, pod, o.Timeout); err != nil {
			return nil, err
		}
	case finished(pod):
		if r.Since.IsZero() {
			r.Since, r.Why = finishedAt(pod), suspendedWhy(pod)
		}
		if err := DeletePod(ctx, cs, pod, nil); err != nil && !errors.As(err, &notFound) {
			return nil, err
		}
		if err := WaitForDeleted(ctx, cs, pod, o.Timeout); err != nil {
			return nil, err
		}
	default:
		return r.running(ctx, cs, pod, o)
	}
	if o.Resuming != nil {
		o.Resuming(r.Since, r.Why)
	}
	created, err := Create(ctx, cs, spec, CreateOptions{Wait: o.Wait, Timeout: o.Timeout, Progress: o.Progress, Prepare: o.Prepare, resume: pvc,
		SecretValues: lookupKeys(spec.Inject, o.LookupKey)})
	var taken *AlreadyExistsError
	if errors.As(err, &taken) {
		// Another resume made the Pod first: it is that one's to start.
		pod, ferr := Find(ctx, cs, namespace, name)
		if ferr != nil {
			return nil, fmt.Errorf("%w (and the sandbox that took the name: %v)", err, ferr)
		}
		return r.running(ctx, cs, pod, o)
	}
	if err != nil {
		return nil, err
	}
	r.Created = *created
	if r.Workspace, err = unstampSuspended(ctx, cs, pvc); err != nil {
		return r, err
	}
	return r, nil
}

func (r *Resumed) running(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, o ResumeOptions) (*Resumed, error) {
	r.Running, r.Pod = true, pod
	if o.Wait {
		running, err := WaitForRunning(ctx, cs, pod, o.Timeout, o.Progress)
		if err != nil {
			return nil, err
		}
		r.Pod = running
	}
	return r, nil
}

// SuspendedError: the sandbox is suspended and the caller asked not to
// resume it.
type SuspendedError struct {
	Name, Namespace string
	Since           time.Time // zero when unknown
	Why             string
}

func (e *SuspendedError) Error() string {
	msg := fmt.Sprintf("sandbox %q in namespace %q is suspended", e.Name, e.Namespace)
	if !e.Since.IsZero() {
		msg += fmt.Sprintf(" (%s, since %s)", e.Why, e.Since.UTC().Format(time.RFC3339))
	}
	return msg + ": its files are kept, but nothing runs until it is resumed"
}

// Awake returns the running Pod of the sandbox called name. A persistent
// sandbox that is suspended (its Pod gone, or ended by its TTL or idle
// timeout) is resumed first, unless noResume: then it is a
// SuspendedError. Every other case is Find's answer, unchanged.
func Awake(ctx context.Context, cs kubernetes.Interface, namespace, name string, noResume bool, o ResumeOptions) (pod *corev1.Pod, resumed *Resumed, err error) {
	pod, err = Find(ctx, cs, namespace, name)
	var notFound *NotFoundError
	if err == nil && !finished(pod) || err != nil && !errors.As(err, &notFound) {
		return pod, nil, err
	}
	pvc, werr := workspaceOf(ctx, cs, namespace, name)
	if werr != nil || OursWorkspace(pvc, name) != nil || pvc.DeletionTimestamp != nil {
		return pod, nil, err // not persistent (or not readable, or going): Find's answer stands
	}
	if noResume {
		since, why, ok := SuspendedSince(pvc)
		if !ok && pod != nil {
			since, why = finishedAt(pod), suspendedWhy(pod)
		}
		return nil, nil, &SuspendedError{Name: name, Namespace: namespace, Since: since, Why: why}
	}
	o.Wait = true
	r, err := Resume(ctx, cs, namespace, name, o)
	if err != nil {
		return nil, nil, err
	}
	return r.Pod, r, nil
}
