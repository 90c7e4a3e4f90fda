package mcp

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// scope is every sandbox this server may touch: those it created in this
// session, and those the user named when starting it (--adopt NAME,
// --adopt-selector SELECTOR). Nothing else is reachable through any tool,
// whatever name an agent sends.
//
// The Pods of sandboxes in scope are kept fresh by one watch, so a command
// through a warm shell reads no Pod at all, and a sandbox that goes away
// (deleted, or its TTL ran out) leaves the scope at once. A new stream is
// opened only after the Pod's UID is confirmed (confirm): a Pod someone
// else creates under the same name, even before the watch tells, is never
// exec'd into.
type scope struct {
	namespace string
	cs        kubernetes.Interface
	config    *restclient.Config
	rest      restclient.Interface
	executor  sandbox.Executor
	adopt     map[string]bool
	selector  labels.Selector // nil: no --adopt-selector
	max       int

	mu       sync.Mutex
	byName   map[string]*entry
	byUID    map[types.UID]*entry
	reserved map[string]bool // names being created
	closed   bool
}

// entry is one sandbox in scope. Guarded by scope.mu.
type entry struct {
	name    string
	created bool        // made by this server: deleted when it stops, unless --keep
	pod     *corev1.Pod // as last seen
	run     *sandbox.PodExec
	gone    string // why it can no longer be used; "" while it can
	removed bool   // the Pod is gone from the cluster (or this server deleted it)

	// A persistent sandbox's workspace (the PVC's UID) is its identity: the
	// entry outlives its Pods, and a resumed Pod (another UID) is taken in
	// only if that workspace owns it. "" for a disposable sandbox.
	workspace types.UID
	// suspended: a persistent sandbox with no Pod that runs (suspended,
	// or its Pod ended by itself): a command resumes it first.
	suspended bool
	// waking serializes this server's resumes of the sandbox, so that
	// concurrent calls wait for one resume rather than race it.
	waking *sync.Mutex

	// The warm shell exec runs commands through (see shell.go).
	shell         *sandbox.Shell
	shellStarting bool
	noShell       bool // starting one failed: every exec streams on its own
}

// target is a snapshot of an entry for one tool call.
type target struct {
	name      string
	created   bool
	pod       *corev1.Pod // nil: a suspended sandbox adopted before any Pod of it was seen
	run       *sandbox.PodExec
	workspace types.UID
	suspended bool
}

func newScope(o *Options) (*scope, error) {
	s := &scope{
		namespace: o.Namespace,
		cs:        o.Clientset,
		config:    o.Config,
		rest:      o.RESTClient,
		executor:  o.Executor,
		adopt:     map[string]bool{},
		max:       o.MaxSandboxes,
		byName:    map[string]*entry{},
		byUID:     map[types.UID]*entry{},
		reserved:  map[string]bool{},
	}
	for _, n := range o.Adopt {
		if err := sandbox.ValidateName(n); err != nil {
			return nil, fmt.Errorf("--adopt: %w", err)
		}
		s.adopt[n] = true
	}
	if o.AdoptSelector != "" {
		sel, err := labels.Parse(o.AdoptSelector)
		if err != nil {
			return nil, fmt.Errorf("invalid --adopt-selector %q: %v", o.AdoptSelector, err)
		}
		s.selector = sel
	}
	return s, nil
}

// watch keeps the Pods of the scope's sandboxes fresh until ctx ends.
func (s *scope) watch(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(s.cs, 0,
		informers.WithNamespace(s.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sandbox.SandboxSelector }))
	informer := factory.Core().V1().Pods().Informer()
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.observe(obj) },
		UpdateFunc: func(_, obj any) { s.observe(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				s.vanished(pod.UID, "it was deleted")
			}
		},
	})
	factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		factory.Shutdown()
	}()
}

// observe takes in a newer state of a Pod in scope.
func (s *scope) observe(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byUID[pod.UID]
	if e == nil || e.removed {
		return
	}
	// Events may trail the Pod a create returned: take a state that ends
	// the sandbox, or one that moves a sandbox on from Pending, never one
	// that would send a running sandbox back to Pending.
	if why := unusable(pod); why != "" && e.workspace != "" && e.gone == "" {
		// A persistent sandbox's Pod that ends (TTL, idle, a suspend) is a
		// suspension: the next command resumes it.
		e.pod = pod
		e.sleep()
	} else if why != "" {
		e.pod = pod
		if e.gone == "" {
			e.gone = why
		}
	} else if e.pod.Status.Phase != corev1.PodRunning {
		e.pod = pod
	}
}

// unusable says why a sandbox Pod can no longer run commands, or "".
func unusable(pod *corev1.Pod) string {
	switch {
	case pod.DeletionTimestamp != nil:
		return "it is being deleted"
	case pod.Status.Phase == corev1.PodFailed && pod.Status.Reason == "DeadlineExceeded":
		return "its TTL ran out"
	case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
		return "it has stopped (" + sandbox.Status(pod) + ")"
	}
	return ""
}

// vanished marks the sandbox of a Pod gone for good.
func (s *scope) vanished(uid types.UID, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byUID[uid]; e != nil && !e.removed {
		delete(s.byUID, uid)
		if e.workspace != "" && why != deletedByServer && e.gone == "" {
			e.sleep() // suspended: the workspace keeps the sandbox
			return
		}
		e.drop(why)
	}
}

// drop marks a sandbox gone for good. Guarded by scope.mu.
func (e *entry) drop(why string) {
	e.removed = true
	if e.gone == "" {
		e.gone = why
	}
	if e.shell != nil {
		e.shell.Close()
		e.shell = nil
	}
}

// sleep marks a persistent sandbox suspended. Guarded by scope.mu.
func (e *entry) sleep() {
	e.suspended = true
	if e.shell != nil {
		e.shell.Close()
		e.shell = nil
	}
	e.noShell = false
}

// live counts the sandboxes this server made that still hold a place.
func (s *scope) live() int {
	n := len(s.reserved)
	for _, e := range s.byName {
		if e.created && !e.removed {
			n++
		}
	}
	return n
}

// reserve holds name and a place under --max-sandboxes while a sandbox is
// being made; release gives both back (add keeps the place).
func (s *scope) reserve(name string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := s.byName[name]; {
	case s.closed:
		return nil, errShuttingDown
	case s.reserved[name] || (e != nil && !e.removed):
		return nil, fmt.Errorf("sandbox %q already exists; pick another name, or leave the name out to get a new one", name)
	case s.live() >= s.max:
		return nil, fmt.Errorf("this server may keep at most %d sandboxes at once (--max-sandboxes) and has %d; delete one with delete_sandbox first", s.max, s.live())
	}
	s.reserved[name] = true
	return func() {
		s.mu.Lock()
		delete(s.reserved, name)
		s.mu.Unlock()
	}, nil
}

var errShuttingDown = errors.New("the server is shutting down and makes no new sandboxes")

// add puts a sandbox Pod into the scope. A sandbox made while the server
// was shutting down is refused: the caller deletes it.
func (s *scope) add(pod *corev1.Pod, created bool) (target, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := sandbox.NameOf(pod)
	if s.closed && created {
		return target{}, errShuttingDown
	}
	if e := s.byName[name]; e != nil && !e.removed {
		return e.target(), nil // adopted by a concurrent call
	}
	e := &entry{
		name:      name,
		created:   created,
		pod:       pod,
		workspace: workspaceOf(pod),
		waking:    &sync.Mutex{},
		// With the environment file a claim left, if any: a sandbox claimed
		// from a pool has its secrets there.
		run:  sandbox.NewPodExec(s.config, s.rest, s.executor, pod),
		gone: unusable(pod),
	}
	if e.workspace != "" {
		if e.gone != "" {
			e.gone = ""
			e.sleep()
		}
	}
	delete(s.reserved, name)
	s.byName[name] = e
	s.byUID[pod.UID] = e
	return e.target(), nil
}

func (e *entry) target() target {
	return target{name: e.name, created: e.created, pod: e.pod, run: e.run, workspace: e.workspace, suspended: e.suspended}
}

// get returns the sandbox called name if it is in scope, adopting it on
// first use when the user allowed that.
func (s *scope) get(ctx context.Context, name string) (target, error) {
	if err := sandbox.ValidateName(name); err != nil {
		return target{}, err
	}
	s.mu.Lock()
	e := s.byName[name]
	if e != nil && !e.removed {
		t := e.target()
		s.mu.Unlock()
		return t, nil
	}
	if e != nil && e.created {
		why := e.gone
		s.mu.Unlock()
		return target{}, fmt.Errorf("sandbox %q is gone: %s; create another with create_sandbox", name, why)
	}
	s.mu.Unlock()

	if !s.adopt[name] && s.selector == nil {
		return target{}, s.notInScope(name)
	}
	pod, err := sandbox.Find(ctx, s.cs, s.namespace, name)
	var nf *sandbox.NotFoundError
	switch {
	case errors.As(err, &nf):
		if t, ok, err := s.adoptSuspended(ctx, name); ok || err != nil {
			return t, err
		}
		if !s.adopt[name] {
			return target{}, s.notInScope(name)
		}
		return target{}, fmt.Errorf("sandbox %q (named with --adopt) does not exist in namespace %q; list_sandboxes shows the ones this server can use", name, s.namespace)
	case err != nil:
		return target{}, err
	}
	if !s.adopt[name] && !s.selector.Matches(labels.Set(pod.Labels)) {
		return target{}, s.notInScope(name)
	}
	return s.add(pod, false)
}

func (s *scope) notInScope(name string) error {
	how := "it works only on the sandboxes it created in this session"
	if s.selector != nil || len(s.adopt) > 0 {
		how += " and those its user adopted (--adopt, --adopt-selector)"
	}
	return fmt.Errorf("sandbox %q is not one this server may use: %s; list_sandboxes shows them, create_sandbox makes a new one", name, how)
}

// usable returns a sandbox in scope that can run commands now.
func (s *scope) usable(ctx context.Context, name string) (target, error) {
	t, err := s.get(ctx, name)
	if err != nil {
		return t, err
	}
	s.mu.Lock()
	why := s.byName[name].gone
	s.mu.Unlock()
	if why != "" {
		return t, fmt.Errorf("sandbox %q cannot run commands: %s; create another with create_sandbox", name, why)
	}
	if t.suspended || t.pod == nil {
		// Only if another call suspended it between the resume and now.
		return t, fmt.Errorf("sandbox %q is suspended; resume it with resume_sandbox", name)
	}
	if t.pod.Status.Phase != corev1.PodRunning {
		return t, fmt.Errorf("sandbox %q is %s, not running yet; try again in a moment", name, sandbox.Status(t.pod))
	}
	return t, nil
}

// recheck reads the Pod after a stream failed (or before one opens:
// confirm): it tells whether the sandbox is still there and can run
// commands, so the agent hears "it was deleted" or "its TTL ran out"
// rather than a transport error.
func (s *scope) recheck(ctx context.Context, t target) error {
	pod, err := s.current(ctx, t)
	if err != nil || pod == nil {
		return err // gone, or nothing learnt: the original error stands
	}
	s.observe(pod)
	if why := unusable(pod); why != "" {
		if t.workspace != "" {
			return suspendedMeanwhile(t.name, why)
		}
		return fmt.Errorf("sandbox %q cannot run commands: %s; create another with create_sandbox", t.name, why)
	}
	return nil
}

// suspendedMeanwhile: a persistent sandbox's Pod ended (a suspend, its TTL)
// while a call used it. Its files are kept: the next call resumes it.
func suspendedMeanwhile(name, why string) error {
	return fmt.Errorf("sandbox %q was suspended while this call used it (%s); its files are kept: call again to resume it", name, why)
}

// confirm reads the Pod before a new stream is opened to it, a warm
// shell's included. A stream reaches a Pod by name, and the watch may not
// yet have told that the sandbox's Pod was deleted: one made since under
// the same name (another UID) would receive the command, its stdin and its
// environment. Nor has it perhaps told that the Pod stopped (its TTL): the
// read says so before anything is sent. A warm shell already running needs
// no confirm: its stream is bound to the container it started in. A failed
// read teaches nothing, and the stream goes ahead as it would have.
func (s *scope) confirm(ctx context.Context, t target) error {
	return s.recheck(ctx, t)
}

// current reads t's Pod: an error if it is gone (or another Pod now has its
// name), no Pod if the read failed.
func (s *scope) current(ctx context.Context, t target) (*corev1.Pod, error) {
	pod, err := s.cs.CoreV1().Pods(t.pod.Namespace).Get(ctx, t.pod.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || (err == nil && pod.UID != t.pod.UID):
		s.vanished(t.pod.UID, "it was deleted")
		if t.workspace != "" {
			return nil, suspendedMeanwhile(t.name, "its Pod was deleted")
		}
		return nil, fmt.Errorf("sandbox %q is gone: it was deleted; create another with create_sandbox", t.name)
	case err != nil:
		return nil, nil
	}
	return pod, nil
}

// streamable is usable, confirmed for a new stream: what the file and copy
// tools, which always open one, start from.
func (s *scope) streamable(ctx context.Context, name string) (target, error) {
	t, err := s.usable(ctx, name)
	if err != nil {
		return t, err
	}
	return t, s.confirm(ctx, t)
}

// deletedByServer is why a sandbox this server deleted is gone.
const deletedByServer = "this server deleted it"

// removed notes that this server deleted a sandbox: its name is free again.
func (s *scope) removed(t target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byName[t.name]; e != nil && !e.removed {
		if t.pod != nil {
			delete(s.byUID, t.pod.UID)
		}
		e.drop(deletedByServer)
	}
}

// deleting records, before the delete is sent, that this server is the one
// deleting the sandbox: the watch may see the Pod go before the delete call
// returns, and the first reason recorded is the one the agent hears. undo
// takes it back if the delete failed.
func (s *scope) deleting(t target) (undo func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byName[t.name]
	if e == nil || e.removed || e.gone != "" {
		return func() {}
	}
	e.gone = deletedByServer
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !e.removed && e.gone == deletedByServer {
			e.gone = ""
		}
	}
}

// snapshot returns the sandboxes in scope, by name.
func (s *scope) snapshot() []listedEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]listedEntry, 0, len(s.byName))
	for _, e := range s.byName {
		if e.removed && !e.created {
			continue
		}
		out = append(out, listedEntry{target: e.target(), gone: e.gone, removed: e.removed})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

type listedEntry struct {
	target
	gone    string
	removed bool
}

// close stops new sandboxes and returns those this server made that still
// exist, for deletion.
func (s *scope) close() []target {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var out []target
	for _, e := range s.byName {
		if e.shell != nil {
			e.shell.Close()
			e.shell = nil
		}
		if e.created && !e.removed {
			out = append(out, e.target())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// workspaceOf is the UID of the workspace that owns a persistent sandbox's
// Pod, or "" for a disposable sandbox.
func workspaceOf(pod *corev1.Pod) types.UID {
	if !sandbox.IsPersistent(pod) {
		return ""
	}
	for _, r := range pod.OwnerReferences {
		if r.Kind == "PersistentVolumeClaim" && r.Name == sandbox.WorkspaceName(sandbox.NameOf(pod)) {
			return r.UID
		}
	}
	return ""
}

// adoptSuspended takes into scope a suspended sandbox (no Pod, a
// workspace) that its user adopted; ok is false when name is not one.
func (s *scope) adoptSuspended(ctx context.Context, name string) (t target, ok bool, err error) {
	if !s.adopt[name] && s.selector == nil {
		return target{}, false, nil
	}
	pvc, err := sandbox.FindWorkspace(ctx, s.cs, s.namespace, name)
	if err != nil {
		return target{}, false, nil // not a suspended sandbox: the caller says why
	}
	if !s.adopt[name] && !s.selector.Matches(labels.Set(pvc.Labels)) {
		return target{}, false, nil
	}
	spec, err := sandbox.SpecOf(pvc)
	if err != nil {
		return target{}, true, err
	}
	// What the sandbox will be, for list_sandboxes: no Pod runs yet.
	pod := spec.Pod()
	pod.UID = ""
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byName[name]; e != nil && !e.removed {
		return e.target(), true, nil
	}
	e := &entry{name: name, pod: pod, workspace: pvc.UID, suspended: true, waking: &sync.Mutex{}}
	s.byName[name] = e
	return e.target(), true, nil
}

// rebind takes in the Pod a resume brought a persistent sandbox back with.
// Its workspace must be the sandbox's: a Pod of a workspace made anew
// under the name is another sandbox.
func (s *scope) rebind(name string, pod *corev1.Pod) (target, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byName[name]
	switch {
	case e == nil || e.removed:
		return target{}, fmt.Errorf("sandbox %q is gone: %s; create another with create_sandbox", name, deletedByServer)
	case e.workspace == "" || workspaceOf(pod) != e.workspace:
		return target{}, fmt.Errorf("sandbox %q is gone: its workspace was deleted, and another sandbox now has its name; create another with create_sandbox", name)
	}
	if e.pod != nil && e.pod.UID != pod.UID {
		delete(s.byUID, e.pod.UID)
	}
	if e.pod == nil || e.pod.UID != pod.UID {
		e.run = sandbox.NewPodExec(s.config, s.rest, s.executor, pod)
	}
	e.pod, e.suspended, e.gone = pod, false, ""
	s.byUID[pod.UID] = e
	return e.target(), nil
}

// suspendedNow notes that this server suspended a sandbox.
func (s *scope) suspendedNow(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byName[name]; e != nil && !e.removed {
		if e.pod != nil {
			delete(s.byUID, e.pod.UID)
		}
		e.sleep()
	}
}

// waking locks the resumes of a sandbox in scope; unlock when done.
func (s *scope) waking(name string) (unlock func()) {
	s.mu.Lock()
	e := s.byName[name]
	s.mu.Unlock()
	if e == nil || e.waking == nil {
		return func() {}
	}
	e.waking.Lock()
	return e.waking.Unlock
}

// fresh is the entry's target now (after another call may have resumed it).
func (s *scope) fresh(name string) (target, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byName[name]
	if e == nil || e.removed {
		return target{}, false
	}
	return e.target(), true
}
