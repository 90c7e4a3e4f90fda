package envd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb"
)

// Watching is polling from this side. envd watches with inotify, which
// needs a process in the sandbox; sandboxes here run nothing of ours, so
// each watcher lists its directory (one exec: find and stat, as ListDir)
// every watchPollInterval and reports the difference. What that costs:
// one exec per watcher per interval (an API server and kubelet stream, a
// find and one stat per batch of names in the sandbox, and a process that
// PID 1 counts as activity), so a watched sandbox does not idle out; and
// events arrive up to an interval late, with writes within one second of
// each other that leave the size alone seen as one (stat's mtime has
// whole seconds in busybox). A rename is a path that vanished while one
// with its inode appeared: RENAME for the old name, CREATE for the new.
const (
	watchPollInterval     = time.Second
	maxWatchersPerSandbox = 16
	maxWatchEntries       = 10_000
	maxPendingEvents      = 10_000
	// A watcher of CreateWatcher whose events nobody has asked for this
	// long is forgotten: its client is gone, and it would poll forever.
	watcherIdleTimeout = 10 * time.Minute
	// Failed polls in a row (the sandbox not answering) that end a watch.
	maxPollFailures = 3
)

// watchers are the watchers of this process, per sandbox.
type watchers struct {
	mu        sync.Mutex
	bySandbox map[string]map[string]*watcher
	interval  time.Duration // watchPollInterval; tests shorten it
	idle      time.Duration // watcherIdleTimeout; tests shorten it
}

func newWatchers() *watchers {
	return &watchers{bySandbox: map[string]map[string]*watcher{}, interval: watchPollInterval, idle: watcherIdleTimeout}
}

// watcher polls one directory.
type watcher struct {
	id, sandbox  string
	root         string
	depth        string // "1", or "" for recursive
	includeEntry bool
	cancel       context.CancelFunc
	// forgettable: a CreateWatcher's, which nobody may ever ask again.
	forgettable bool

	mu      sync.Mutex
	pending []*filesystempb.FilesystemEvent
	err     error // why polling ended
	asked   time.Time
}

func watchKey(ctx context.Context) (string, error) {
	sb, ok := SandboxFrom(ctx)
	if !ok {
		return "", connect.NewError(connect.CodeInternal, errNoSandbox)
	}
	return sb.Namespace + "/" + sb.ID, nil
}

// add registers w under its sandbox, within the cap.
func (ws *watchers) add(w *watcher) error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	m := ws.bySandbox[w.sandbox]
	if len(m) >= maxWatchersPerSandbox {
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("this sandbox already has %d directory watchers, the most it may have; stop one first", maxWatchersPerSandbox))
	}
	if m == nil {
		m = map[string]*watcher{}
		ws.bySandbox[w.sandbox] = m
	}
	m[w.id] = w
	return nil
}

func (ws *watchers) remove(w *watcher) {
	w.cancel()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if m := ws.bySandbox[w.sandbox]; m[w.id] == w {
		delete(m, w.id)
		if len(m) == 0 {
			delete(ws.bySandbox, w.sandbox)
		}
	}
}

func (ws *watchers) get(ctx context.Context, id string) (*watcher, error) {
	key, err := watchKey(ctx)
	if err != nil {
		return nil, err
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w := ws.bySandbox[key][id]
	if w == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("watcher %q not found: it was removed, or it ended", id))
	}
	return w, nil
}

// newWatcher validates a watch of p and takes its first snapshot.
func (ws *watchers) newWatcher(ctx context.Context, p string, recursive, includeEntry bool) (*watcher, map[string]*statLine, error) {
	root, err := pathArg(p)
	if err != nil {
		return nil, nil, err
	}
	key, err := watchKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	w := &watcher{id: hex.EncodeToString(nonce[:]), sandbox: key, root: root, depth: "1", includeEntry: includeEntry, asked: time.Now()}
	if recursive {
		w.depth = ""
	}
	snap, err := listRaw(ctx, root, w.depth, maxWatchEntries)
	if err != nil {
		return nil, nil, err
	}
	return w, snap, nil
}

// run polls until ctx ends or polling fails, handing each poll's events
// to emit (which returns false to stop).
func (ws *watchers) run(ctx context.Context, w *watcher, snap map[string]*statLine, emit func([]*filesystempb.FilesystemEvent) bool) error {
	t := time.NewTicker(ws.interval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if w.forgettable && w.forgotten(ws.idle) {
			return errForgotten
		}
		next, err := listRaw(ctx, w.root, w.depth, maxWatchEntries)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var ce *connect.Error
			if errors.As(err, &ce) && ce.Code() == connect.CodeUnavailable && failures+1 < maxPollFailures {
				failures++
				continue
			}
			return err
		}
		failures = 0
		if evs := diffSnapshots(w.root, snap, next, w.includeEntry); len(evs) > 0 && !emit(evs) {
			return nil
		}
		snap = next
	}
}

// errForgotten: nobody asked a watcher for its events for too long.
var errForgotten = errors.New("the watcher was forgotten")

func (w *watcher) forgotten(idle time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Since(w.asked) > idle
}

// diffSnapshots is what happened between two listings of root, in the
// order removes and renames, then creates, writes and mode changes, each
// by name. A path whose file was replaced (an upload renames a new file
// over it) was written, as envd's upload in place reports it; uploads'
// temporary files are nobody's business and never reported.
func diffSnapshots(root string, old, next map[string]*statLine, includeEntry bool) []*filesystempb.FilesystemEvent {
	event := func(name string, t filesystempb.EventType, st *statLine) *filesystempb.FilesystemEvent {
		ev := &filesystempb.FilesystemEvent{Name: validUTF8(name), Type: t}
		if includeEntry && st != nil {
			ev.Entry = st.entryInfo(path.Join(root, name))
		}
		return ev
	}
	// The inodes that arrived at a path, by rename or otherwise.
	arrived := map[uint64]bool{}
	for name, st := range next {
		if o, ok := old[name]; !ok || o.inode != st.inode {
			arrived[st.inode] = true
		}
	}
	var gone, came []*filesystempb.FilesystemEvent
	for _, name := range sortedNames(old) {
		st := old[name]
		if n, ok := next[name]; isUploadTemp(name) || ok && n.mode.Type() == st.mode.Type() {
			continue
		}
		t := filesystempb.EventType_EVENT_TYPE_REMOVE
		if arrived[st.inode] {
			t = filesystempb.EventType_EVENT_TYPE_RENAME
		}
		gone = append(gone, event(name, t, nil))
	}
	for _, name := range sortedNames(next) {
		st := next[name]
		o, ok := old[name]
		switch {
		case isUploadTemp(name):
		case !ok || o.mode.Type() != st.mode.Type():
			came = append(came, event(name, filesystempb.EventType_EVENT_TYPE_CREATE, st))
		case !st.mode.IsDir() && (o.inode != st.inode || o.size != st.size || o.mtime != st.mtime):
			came = append(came, event(name, filesystempb.EventType_EVENT_TYPE_WRITE, st))
		case o.mode != st.mode:
			came = append(came, event(name, filesystempb.EventType_EVENT_TYPE_CHMOD, st))
		}
	}
	return append(gone, came...)
}

// isUploadTemp: the temporary name of an upload under way (writeFile).
func isUploadTemp(name string) bool { return strings.HasPrefix(path.Base(name), uploadTempPrefix) }

func sortedNames(m map[string]*statLine) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// keepaliveInterval is the Keepalive-Ping-Interval the SDK asks for, in
// seconds; zero when absent or not a sane number.
func keepaliveInterval(h string) time.Duration {
	n, err := strconv.Atoi(h)
	if err != nil || n < 1 || n > 3600 {
		return 0
	}
	return time.Duration(n) * time.Second
}

func (s *filesystemService) WatchDir(ctx context.Context, req *connect.Request[filesystempb.WatchDirRequest], stream *connect.ServerStream[filesystempb.WatchDirResponse]) error {
	ws := s.watchers
	w, snap, err := ws.newWatcher(ctx, req.Msg.GetPath(), req.Msg.GetRecursive(), req.Msg.GetIncludeEntry())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	if err := ws.add(w); err != nil {
		cancel()
		return err
	}
	defer ws.remove(w)
	// One writer at a time: events and keepalives share the stream.
	var sendMu sync.Mutex
	send := func(m *filesystempb.WatchDirResponse) bool {
		sendMu.Lock()
		defer sendMu.Unlock()
		if err := stream.Send(m); err != nil {
			cancel()
			return false
		}
		return true
	}
	if !send(&filesystempb.WatchDirResponse{Event: &filesystempb.WatchDirResponse_Start{Start: &filesystempb.WatchDirResponse_StartEvent{}}}) {
		return nil
	}
	// The stream is the handler's: nothing may send once it returns.
	var keepalives sync.WaitGroup
	defer keepalives.Wait()
	defer cancel()
	if every := keepaliveInterval(req.Header().Get("Keepalive-Ping-Interval")); every > 0 {
		keepalives.Add(1)
		go func() {
			defer keepalives.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					send(&filesystempb.WatchDirResponse{Event: &filesystempb.WatchDirResponse_Keepalive{Keepalive: &filesystempb.WatchDirResponse_KeepAlive{}}})
				}
			}
		}()
	}
	return ws.run(ctx, w, snap, func(evs []*filesystempb.FilesystemEvent) bool {
		for _, ev := range evs {
			if !send(&filesystempb.WatchDirResponse{Event: &filesystempb.WatchDirResponse_Filesystem{Filesystem: ev}}) {
				return false
			}
		}
		return true
	})
}

func (s *filesystemService) CreateWatcher(ctx context.Context, req *connect.Request[filesystempb.CreateWatcherRequest]) (*connect.Response[filesystempb.CreateWatcherResponse], error) {
	ws := s.watchers
	w, snap, err := ws.newWatcher(ctx, req.Msg.GetPath(), req.Msg.GetRecursive(), req.Msg.GetIncludeEntry())
	if err != nil {
		return nil, err
	}
	// The watcher outlives this request; it keeps the request's sandbox.
	pollCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel, w.forgettable = cancel, true
	if err := ws.add(w); err != nil {
		cancel()
		return nil, err
	}
	go func() {
		err := ws.run(pollCtx, w, snap, func(evs []*filesystempb.FilesystemEvent) bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			if len(w.pending)+len(evs) > maxPendingEvents {
				w.err = connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("more than %d events waited to be fetched; the watcher stopped: fetch its events more often", maxPendingEvents))
				return false
			}
			w.pending = append(w.pending, evs...)
			return true
		})
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
		// A watcher that failed stays until its events and error are
		// fetched, or for watcherIdleTimeout; a forgotten or removed one
		// goes now.
		if errors.Is(err, errForgotten) || pollCtx.Err() != nil {
			ws.remove(w)
			return
		}
		time.AfterFunc(ws.idle, func() { ws.remove(w) })
	}()
	return connect.NewResponse(&filesystempb.CreateWatcherResponse{WatcherId: w.id}), nil
}

func (s *filesystemService) GetWatcherEvents(ctx context.Context, req *connect.Request[filesystempb.GetWatcherEventsRequest]) (*connect.Response[filesystempb.GetWatcherEventsResponse], error) {
	w, err := s.watchers.get(ctx, req.Msg.GetWatcherId())
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	evs, failed := w.pending, w.err
	w.pending, w.asked = nil, time.Now()
	w.mu.Unlock()
	if failed != nil && len(evs) == 0 {
		s.watchers.remove(w)
		return nil, failed
	}
	return connect.NewResponse(&filesystempb.GetWatcherEventsResponse{Events: evs}), nil
}

func (s *filesystemService) RemoveWatcher(ctx context.Context, req *connect.Request[filesystempb.RemoveWatcherRequest]) (*connect.Response[filesystempb.RemoveWatcherResponse], error) {
	w, err := s.watchers.get(ctx, req.Msg.GetWatcherId())
	if err != nil {
		return nil, err
	}
	s.watchers.remove(w)
	return connect.NewResponse(&filesystempb.RemoveWatcherResponse{}), nil
}
