package mcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Persist is the most a persistent sandbox of this server's may be: its
// workspace (a PersistentVolumeClaim) outlives its Pods, so it is storage
// the cluster keeps while nothing runs. The zero value allows none.
type Persist struct {
	// MaxSize is the largest workspace an agent may ask for; zero: the
	// server makes no persistent sandboxes.
	MaxSize resource.Quantity
	// StorageClasses are the classes an agent may name beside the
	// cluster's default (which it gets when it names none).
	StorageClasses []string
	// MaxRetain is the default and the longest time a suspended workspace
	// is kept before gc may delete it; zero lets it be kept until deleted.
	MaxRetain time.Duration
}

func (p *Persist) validate() error {
	switch {
	case p.MaxSize.Sign() < 0:
		return fmt.Errorf("--persist-max must not be negative (got %s)", p.MaxSize.String())
	case p.MaxRetain < 0 || (p.MaxRetain > 0 && p.MaxRetain < time.Minute):
		return fmt.Errorf("--persist-retain must be at least 1m, or 0 to keep suspended workspaces until they are deleted (got %s)", p.MaxRetain)
	}
	for _, c := range p.StorageClasses {
		if errs := validation.IsDNS1123Subdomain(c); len(errs) > 0 {
			return fmt.Errorf("--persist-storage-class %q is not a StorageClass name (a DNS subdomain)", c)
		}
	}
	return nil
}

// workspaceFor is the workspace create_sandbox's arguments ask for, held
// to the server's Persist; nil for a disposable sandbox.
func (s *Server) workspaceFor(in CreateInput) (*sandbox.Workspace, error) {
	p := s.o.Persist
	if !in.Persist {
		if in.WorkspaceSize != "" || in.StorageClass != "" || in.Retain != "" {
			return nil, errors.New("workspace_size, storage_class and retain are for a persistent sandbox: set persist to true, or leave them out")
		}
		return nil, nil
	}
	if p.MaxSize.Sign() <= 0 {
		return nil, errors.New("this server may not create persistent sandboxes (its user did not allow any with --persist-max); create one without persist")
	}
	w := &sandbox.Workspace{Size: sandbox.DefaultWorkspaceSize.DeepCopy(), StorageClass: in.StorageClass, Retain: p.MaxRetain}
	if w.Size.Cmp(p.MaxSize) > 0 {
		w.Size = p.MaxSize.DeepCopy()
	}
	if in.WorkspaceSize != "" {
		q, err := sandbox.ParseQuantity("workspace_size", in.WorkspaceSize)
		if err != nil {
			return nil, err
		}
		w.Size = q
	}
	if in.Retain != "" {
		d, err := time.ParseDuration(in.Retain)
		if err != nil {
			return nil, fmt.Errorf("invalid retain %q: use a duration such as 24h", in.Retain)
		}
		w.Retain = d
	}
	if why := s.workspaceBeyond(w); why != "" {
		return nil, errors.New(why + "; ask for less, or ask the server's user")
	}
	return w, nil
}

// workspaceBeyond says, in create_sandbox's argument names, how a workspace
// goes beyond the server's Persist, or "".
func (s *Server) workspaceBeyond(w *sandbox.Workspace) string {
	p := s.o.Persist
	var why []string
	switch {
	case p.MaxSize.Sign() <= 0:
		return "this server may not use persistent sandboxes (its user did not allow any with --persist-max)"
	case w.Size.Cmp(p.MaxSize) > 0:
		why = append(why, fmt.Sprintf("workspace_size %s is more than this server allows (%s)", w.Size.String(), p.MaxSize.String()))
	}
	if w.StorageClass != "" && !slices.Contains(p.StorageClasses, w.StorageClass) {
		allowed := "only the cluster's default: leave storage_class out"
		if len(p.StorageClasses) > 0 {
			allowed = "the cluster's default, or " + strings.Join(p.StorageClasses, ", ")
		}
		why = append(why, fmt.Sprintf("storage_class %q is not one this server allows (%s)", w.StorageClass, allowed))
	}
	if p.MaxRetain > 0 && (w.Retain <= 0 || w.Retain > p.MaxRetain) {
		asked := w.Retain.String()
		if w.Retain <= 0 {
			asked = "0 (kept until deleted)"
		}
		why = append(why, fmt.Sprintf("retain %s is longer than this server allows (%s)", asked, p.MaxRetain))
	}
	return strings.Join(why, "; ")
}

// admitRecord holds the Spec a workspace records to the server's ceiling
// before a resume makes a Pod from it: the record is an annotation that
// whoever may edit claims in the namespace can change, and a resume must
// make nothing create_sandbox would refuse.
func (s *Server) admitRecord(spec *sandbox.Spec) error {
	var why []string
	for _, e := range s.beyond(spec) {
		why = append(why, poolBeyond(e))
	}
	if spec.TTL <= 0 || spec.TTL > s.o.Spec.TTL {
		why = append(why, fmt.Sprintf("its ttl %s is not within this server's (1s to %s)", spec.TTL, s.o.Spec.TTL))
	}
	if spec.Workspace != nil {
		if w := s.workspaceBeyond(spec.Workspace); w != "" {
			why = append(why, w)
		}
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("this server may not resume sandbox %q: its record (what it was created as) asks for more than this server allows: %s; ask the server's user", spec.Name, strings.Join(why, "; "))
}

// wake resumes a persistent sandbox in scope that is suspended, before a
// tool uses it, and says so ("suspended 2h ago (idle)"); "" when it ran.
func (s *Server) wake(ctx context.Context, name string) (string, error) {
	t, err := s.scope.get(ctx, name)
	if err != nil || !asleep(t) {
		return "", err
	}
	_, resumed, err := s.resumeTarget(ctx, t)
	return resumed, err
}

// asleep: a persistent sandbox whose Pod does not run (or has ended).
func asleep(t target) bool {
	return t.workspace != "" && (t.suspended || t.pod == nil || unusable(t.pod) != "")
}

// ready is a sandbox in scope that can run commands now, resumed first if
// it was suspended; stream: confirmed for a new stream (scope.streamable).
func (s *Server) ready(ctx context.Context, name string, stream bool) (target, string, error) {
	resumed, err := s.wake(ctx, name)
	if err != nil {
		return target{}, "", err
	}
	var t target
	if stream {
		t, err = s.scope.streamable(ctx, name)
	} else {
		t, err = s.scope.usable(ctx, name)
	}
	return t, resumed, err
}

// resumeTarget brings a persistent sandbox in scope back (sandbox.Awake,
// its record admitted against the ceiling) and takes its new Pod into the
// scope. Calls of this server for one sandbox resume one at a time; the
// domain makes racing resumes from elsewhere make one Pod.
func (s *Server) resumeTarget(ctx context.Context, t target) (target, string, error) {
	if t.workspace == "" {
		return t, "", &sandbox.NotPersistentError{Name: t.name, Namespace: s.o.Namespace}
	}
	unlock := s.scope.waking(t.name)
	defer unlock()
	if now, ok := s.scope.fresh(t.name); ok && !asleep(now) {
		return now, "", nil // another call resumed it while this one waited
	}
	if err := s.sameWorkspace(ctx, t); err != nil {
		return t, "", err
	}
	var since time.Time
	why, heard := "", false
	var pod *corev1.Pod
	var err error
	for attempt := 0; ; attempt++ {
		pod, _, err = sandbox.Awake(ctx, s.o.Clientset, s.o.Namespace, t.name, false, sandbox.ResumeOptions{
			Timeout:  s.o.StartTimeout,
			Admit:    s.admitRecord,
			Resuming: func(at time.Time, w string) { since, why, heard = at, w, true },
		})
		if err != nil {
			return t, "", err
		}
		if pod.DeletionTimestamp == nil {
			break
		}
		// Another process is suspending it: resume once its Pod is gone.
		if attempt > 0 {
			return t, "", suspendedMeanwhile(t.name, "its Pod is being deleted")
		}
		if err := sandbox.WaitForDeleted(ctx, s.o.Clientset, pod, s.o.StartTimeout); err != nil {
			return t, "", err
		}
	}
	if pod.Status.Phase != corev1.PodRunning {
		// Another process's resume made it, and it is still starting.
		if pod, err = sandbox.WaitForRunning(ctx, s.o.Clientset, pod, s.o.StartTimeout, nil); err != nil {
			return t, "", err
		}
	}
	nt, err := s.scope.rebind(t.name, pod)
	if err != nil {
		return t, "", err
	}
	resumed := ""
	if heard {
		resumed = sandbox.DescribeSuspension(since, why, time.Now())
		s.log.Info("resumed sandbox", "sandbox", t.name, "was", resumed, "pod_uid", string(pod.UID))
	}
	return nt, resumed, nil
}

// sameWorkspace refuses a sandbox whose workspace is not the one in scope:
// deleted, or made anew under the name by someone else.
func (s *Server) sameWorkspace(ctx context.Context, t target) error {
	pvc, err := sandbox.FindWorkspace(ctx, s.o.Clientset, s.o.Namespace, t.name)
	var nf *sandbox.NotFoundError
	var np *sandbox.NotPersistentError
	switch {
	case errors.As(err, &nf), errors.As(err, &np), err == nil && pvc.UID != t.workspace:
		return &sandbox.WorkspaceGoneError{Name: t.name, Namespace: s.o.Namespace}
	}
	return err
}

// persistent is a persistent sandbox in scope.
func (s *Server) persistent(ctx context.Context, name string) (target, error) {
	t, err := s.scope.get(ctx, name)
	if err == nil && t.workspace == "" {
		err = &sandbox.NotPersistentError{Name: t.name, Namespace: s.o.Namespace}
	}
	return t, err
}

// SuspendInput names the sandbox to suspend.
type SuspendInput struct {
	Sandbox string `json:"sandbox" jsonschema:"name of a persistent sandbox"`
}

// SuspendOutput says what suspend did.
type SuspendOutput struct {
	Suspended string `json:"suspended"`
	Already   bool   `json:"already" jsonschema:"it was suspended before this call"`
	Since     string `json:"since" jsonschema:"when it was suspended (RFC 3339)"`
	Why       string `json:"why" jsonschema:"why: suspended, idle, ttl, or how its last Pod ended"`
}

func (s *Server) suspend(ctx context.Context, in SuspendInput) (SuspendOutput, error) {
	t, err := s.persistent(ctx, in.Sandbox)
	if err != nil {
		return SuspendOutput{}, err
	}
	unlock := s.scope.waking(t.name)
	defer unlock()
	if err := s.sameWorkspace(ctx, t); err != nil {
		return SuspendOutput{}, err
	}
	sus, err := sandbox.Suspend(ctx, s.o.Clientset, s.o.Namespace, t.name, sandbox.SuspendOptions{
		// Every write a tool saw acknowledged is on the volume before
		// the Pod goes.
		Flush: func(ctx context.Context, pod *corev1.Pod) error {
			noSync, err := sandbox.Flush(ctx, sandbox.NewPodExec(s.o.Config, s.o.RESTClient, s.o.Executor, pod))
			if noSync {
				s.log.Warn("the sandbox's image has no sync: its volume is flushed when it is unmounted", "sandbox", t.name)
			}
			return err
		},
		Timeout: deleteWait,
	})
	if err != nil {
		return SuspendOutput{}, err
	}
	s.scope.suspendedNow(t.name)
	s.log.Info("suspended sandbox", "sandbox", t.name, "already", sus.Already)
	return SuspendOutput{Suspended: t.name, Already: sus.Already, Since: sus.Since.UTC().Format(time.RFC3339), Why: sus.Why}, nil
}

// ResumeInput names the sandbox to resume.
type ResumeInput struct {
	Sandbox string `json:"sandbox" jsonschema:"name of a persistent sandbox"`
}

// ResumeOutput is the sandbox, running.
type ResumeOutput struct {
	Sandbox SandboxInfo `json:"sandbox"`
	Resumed string      `json:"resumed,omitempty" jsonschema:"since when and why it was suspended; empty when it was running"`
}

func (s *Server) resume(ctx context.Context, in ResumeInput) (ResumeOutput, error) {
	t, err := s.persistent(ctx, in.Sandbox)
	if err != nil {
		return ResumeOutput{}, err
	}
	resumed := ""
	if asleep(t) {
		if t, resumed, err = s.resumeTarget(ctx, t); err != nil {
			return ResumeOutput{}, err
		}
	}
	return ResumeOutput{Sandbox: s.describe(ctx, t, "", t.created), Resumed: resumed}, nil
}

// removeWorkspace deletes the workspace of a persistent sandbox in scope,
// by its UID: a workspace made anew under the name is never hit. The
// garbage collector takes its Secret and any Pod it still owns.
func (s *Server) removeWorkspace(ctx context.Context, t target) error {
	err := s.o.Clientset.CoreV1().PersistentVolumeClaims(s.o.Namespace).Delete(ctx, sandbox.WorkspaceName(t.name), metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: ptr.To(t.workspace)},
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
	})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("deleting the workspace of sandbox %q (persistentvolumeclaim/%s): %w", t.name, sandbox.WorkspaceName(t.name), err)
}

// describe is info with what the workspace says of a persistent sandbox:
// its size and class, and since when and why it is suspended.
func (s *Server) describe(ctx context.Context, t target, gone string, created bool) SandboxInfo {
	out := info(t, gone, created)
	if t.workspace == "" {
		return out
	}
	out.Persistent = true
	if t.suspended {
		out.Status, out.Usable = "Suspended", false
		if out.Note == "" {
			out.Note = "suspended: its files are kept; any command resumes it (or resume_sandbox)"
		}
		out.ExpiresAt = ""
	}
	pvc, err := sandbox.FindWorkspace(ctx, s.o.Clientset, s.o.Namespace, t.name)
	if err != nil || pvc.UID != t.workspace {
		return out
	}
	if q, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
		out.WorkspaceSize = q.String()
	}
	if c := pvc.Spec.StorageClassName; c != nil {
		out.StorageClass = *c
	}
	if at, why, ok := sandbox.SuspendedSince(pvc); ok && t.suspended {
		out.SuspendedSince, out.SuspendedWhy = at.UTC().Format(time.RFC3339), why
	}
	return out
}

// suspendedCandidate describes a sandbox named with --adopt that is
// suspended (a workspace, no Pod), without taking it into the scope yet.
func (s *Server) suspendedCandidate(ctx context.Context, name string) (SandboxInfo, bool) {
	pvc, err := sandbox.FindWorkspace(ctx, s.o.Clientset, s.o.Namespace, name)
	if err != nil {
		return SandboxInfo{}, false
	}
	spec, err := sandbox.SpecOf(pvc)
	if err != nil {
		return SandboxInfo{}, false
	}
	return s.describe(ctx, target{name: name, pod: spec.Pod(), workspace: pvc.UID, suspended: true}, "", false), true
}
