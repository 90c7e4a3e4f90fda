package envd

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb"
)

type seen struct{ name, kind string }

func eventsOf(evs []*filesystempb.FilesystemEvent) []seen {
	var out []seen
	for _, ev := range evs {
		out = append(out, seen{ev.GetName(), strings.TrimPrefix(ev.GetType().String(), "EVENT_TYPE_")})
	}
	return out
}

func TestWatchDirStream(t *testing.T) {
	for shell, tools := range shells(t) {
		t.Run(shell, func(t *testing.T) {
			f := startEnvd(t, tools)
			writeFiles(t, f.dir, "old", "renamed-from", "sub/keep")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req := connect.NewRequest(&filesystempb.WatchDirRequest{Path: f.dir, Recursive: true, IncludeEntry: true})
			req.Header().Set("Keepalive-Ping-Interval", "1")
			stream, err := f.fs.WatchDir(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			if !stream.Receive() || stream.Msg().GetStart() == nil {
				t.Fatalf("first message %v, %v: want the start event", stream.Msg(), stream.Err())
			}
			// Every change after the start event is seen.
			writeFiles(t, f.dir, "new\nname", "sub/deep/x")
			if err := os.WriteFile(f.path("old"), []byte("longer now"), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(f.path("renamed-from"), f.path("renamed-to")); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f.path("sub/keep"), 0o600); err != nil {
				t.Fatal(err)
			}
			want := map[seen]bool{
				{"new\nname", "CREATE"}: true, {"sub/deep", "CREATE"}: true, {"sub/deep/x", "CREATE"}: true,
				{"old", "WRITE"}: true, {"renamed-from", "RENAME"}: true, {"renamed-to", "CREATE"}: true, {"sub/keep", "CHMOD"}: true,
			}
			keepalives := 0
			var got []seen
			for len(want) > 0 && stream.Receive() {
				msg := stream.Msg()
				if msg.GetKeepalive() != nil {
					keepalives++
					continue
				}
				ev := msg.GetFilesystem()
				s := eventsOf([]*filesystempb.FilesystemEvent{ev})[0]
				got = append(got, s)
				delete(want, s)
				if s.kind != "RENAME" && (ev.GetEntry() == nil || ev.GetEntry().GetPath() != f.path(s.name)) {
					t.Errorf("event %v carries entry %v", s, ev.GetEntry())
				}
			}
			if len(want) > 0 {
				t.Fatalf("not seen: %v (seen %v, stream %v)", want, got, stream.Err())
			}
			// An upload over a file is a write (its rename is not seen).
			res := f.uploadRaw(t, f.path("sub/keep"), strings.NewReader("uploaded"), nil)
			res.Body.Close()
			for stream.Receive() {
				if ev := stream.Msg().GetFilesystem(); ev != nil {
					if s := eventsOf([]*filesystempb.FilesystemEvent{ev})[0]; s != (seen{"sub/keep", "WRITE"}) {
						t.Errorf("after an upload: %v", s)
					}
					break
				}
			}
			if err := os.Remove(f.path("old")); err != nil {
				t.Fatal(err)
			}
			for stream.Receive() {
				if ev := stream.Msg().GetFilesystem(); ev != nil {
					if s := eventsOf([]*filesystempb.FilesystemEvent{ev})[0]; s != (seen{"old", "REMOVE"}) {
						t.Errorf("after the remove: %v", s)
					}
					break
				}
				keepalives++
			}
			time.Sleep(1200 * time.Millisecond)
			if !stream.Receive() || stream.Msg().GetKeepalive() == nil {
				t.Errorf("no keepalive after a quiet second: %v", stream.Msg())
			}
			// The watcher goes with its stream.
			cancel()
			deadline := time.Now().Add(5 * time.Second)
			for f.h.files.watchers.count() > 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := f.h.files.watchers.count(); n != 0 {
				t.Errorf("%d watchers left after the stream ended", n)
			}
		})
	}
}

func TestWatchDirErrors(t *testing.T) {
	f := startEnvd(t, "")
	writeFiles(t, f.dir, "file")
	ctx := context.Background()
	for path, code := range map[string]connect.Code{f.path("missing"): connect.CodeNotFound, f.path("file"): connect.CodeInvalidArgument, "": connect.CodeInvalidArgument} {
		stream, err := f.fs.WatchDir(ctx, connect.NewRequest(&filesystempb.WatchDirRequest{Path: path}))
		if err == nil {
			for stream.Receive() {
			}
			err = stream.Err()
		}
		if connectCode(err) != code {
			t.Errorf("watch %q: %v, want %v", path, err, code)
		}
		if _, err := f.fs.CreateWatcher(ctx, connect.NewRequest(&filesystempb.CreateWatcherRequest{Path: path})); connectCode(err) != code {
			t.Errorf("create watcher %q: %v, want %v", path, err, code)
		}
	}
	// A tree too big to poll is refused, saying what to do.
	tree := f.path("tree")
	for i := range maxWatchEntries + 1 {
		if i%1000 == 0 {
			if err := os.MkdirAll(f.path("tree/"+strconv.Itoa(i/1000)), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(f.path("tree/"+strconv.Itoa(i/1000)+"/"+strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.fs.CreateWatcher(ctx, connect.NewRequest(&filesystempb.CreateWatcherRequest{Path: tree, Recursive: true}))
	if connectCode(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "watch a directory deeper down") {
		t.Errorf("watching %d entries: %v, want ResourceExhausted", maxWatchEntries+1, err)
	}
	if _, err := f.fs.CreateWatcher(ctx, connect.NewRequest(&filesystempb.CreateWatcherRequest{Path: tree})); err != nil {
		t.Errorf("watching the same tree one level deep: %v", err)
	}
	// A watched directory that goes away ends the watch with NotFound.
	dir := f.path("gone")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stream, err := f.fs.WatchDir(ctx, connect.NewRequest(&filesystempb.WatchDirRequest{Path: dir}))
	if err != nil || !stream.Receive() {
		t.Fatal(err, stream.Err())
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	for stream.Receive() {
	}
	if connectCode(stream.Err()) != connect.CodeNotFound {
		t.Errorf("watch of a removed directory ended with %v, want NotFound", stream.Err())
	}
}

func TestWatchers(t *testing.T) {
	f := startEnvd(t, "")
	ctx := context.Background()
	res, err := f.fs.CreateWatcher(ctx, connect.NewRequest(&filesystempb.CreateWatcherRequest{Path: f.dir}))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Msg.GetWatcherId()
	writeFiles(t, f.dir, "a", "sub/not-recursive")
	var got []seen
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		evs, err := f.fs.GetWatcherEvents(ctx, connect.NewRequest(&filesystempb.GetWatcherEventsRequest{WatcherId: id}))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, eventsOf(evs.Msg.GetEvents())...)
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != 2 || got[0] != (seen{"a", "CREATE"}) || got[1] != (seen{"sub", "CREATE"}) {
		t.Errorf("events %v, want a and sub created (not below sub)", got)
	}
	if _, err := f.fs.RemoveWatcher(ctx, connect.NewRequest(&filesystempb.RemoveWatcherRequest{WatcherId: id})); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fs.GetWatcherEvents(ctx, connect.NewRequest(&filesystempb.GetWatcherEventsRequest{WatcherId: id})); connectCode(err) != connect.CodeNotFound {
		t.Errorf("events of a removed watcher: %v, want NotFound", err)
	}
	if _, err := f.fs.RemoveWatcher(ctx, connect.NewRequest(&filesystempb.RemoveWatcherRequest{WatcherId: id})); connectCode(err) != connect.CodeNotFound {
		t.Errorf("removing it again: %v, want NotFound", err)
	}
	// At most maxWatchersPerSandbox at once.
	for i := range maxWatchersPerSandbox {
		res, err := f.fs.CreateWatcher(ctx, connect.NewRequest(&filesystempb.CreateWatcherRequest{Path: f.dir}))
		if err != nil {
			t.Fatalf("watcher %d: %v", i, err)
		}
		id = res.Msg.GetWatcherId()
	}
	_, err = f.fs.CreateWatcher(ctx, connect.NewRequest(&filesystempb.CreateWatcherRequest{Path: f.dir}))
	if connectCode(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "stop one first") {
		t.Errorf("one watcher too many: %v, want ResourceExhausted", err)
	}
	// Another sandbox's watcher is not this one's.
	other := &Sandbox{ID: "other", Namespace: "agents"}
	if _, err := f.h.files.watchers.get(WithSandbox(ctx, other), id); connectCode(err) != connect.CodeNotFound {
		t.Errorf("got another sandbox's watcher: %v", err)
	}
	if _, err := f.fs.GetWatcherEvents(ctx, connect.NewRequest(&filesystempb.GetWatcherEventsRequest{WatcherId: id})); err != nil {
		t.Errorf("the sandbox's own watcher: %v", err)
	}
}

func TestWatcherForgottenOrFailed(t *testing.T) {
	f := startEnvd(t, "")
	f.h.files.watchers.idle = 300 * time.Millisecond
	ctx := context.Background()
	create := func(dir string) string {
		t.Helper()
		res, err := f.fs.CreateWatcher(ctx, connect.NewRequest(&filesystempb.CreateWatcherRequest{Path: dir}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetWatcherId()
	}
	waitCount := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for f.h.files.watchers.count() != n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := f.h.files.watchers.count(); got != n {
			t.Fatalf("%d watchers, want %d", got, n)
		}
	}
	// Nobody asks: it goes, and stops polling.
	id := create(f.dir)
	waitCount(0)
	execs := f.exec.count()
	time.Sleep(300 * time.Millisecond)
	if f.exec.count() != execs {
		t.Errorf("a forgotten watcher still polls")
	}
	if _, err := f.fs.GetWatcherEvents(ctx, connect.NewRequest(&filesystempb.GetWatcherEventsRequest{WatcherId: id})); connectCode(err) != connect.CodeNotFound {
		t.Errorf("events of a forgotten watcher: %v, want NotFound", err)
	}
	// Its directory goes: the next fetch says why, once.
	dir := f.path("gone")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.h.files.watchers.idle = time.Minute
	id = create(dir)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = f.fs.GetWatcherEvents(ctx, connect.NewRequest(&filesystempb.GetWatcherEventsRequest{WatcherId: id}))
		time.Sleep(50 * time.Millisecond)
	}
	if connectCode(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("events of a watcher whose directory went: %v", err)
	}
	waitCount(0)
}

// count is how many watchers run, for tests.
func (ws *watchers) count() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	n := 0
	for _, m := range ws.bySandbox {
		n += len(m)
	}
	return n
}

func TestDiffSnapshots(t *testing.T) {
	file := func(inode uint64, size, mtime int64, perm os.FileMode) *statLine {
		return &statLine{mode: perm, size: size, mtime: mtime, inode: inode}
	}
	dir := func(inode uint64) *statLine { return &statLine{mode: os.ModeDir | 0o755, inode: inode} }
	for name, tc := range map[string]struct {
		old, next map[string]*statLine
		want      []seen
	}{
		"nothing":        {map[string]*statLine{"a": file(1, 1, 1, 0o644)}, map[string]*statLine{"a": file(1, 1, 1, 0o644)}, nil},
		"create, remove": {map[string]*statLine{"a": file(1, 1, 1, 0o644)}, map[string]*statLine{"b": file(2, 1, 1, 0o644)}, []seen{{"a", "REMOVE"}, {"b", "CREATE"}}},
		"write":          {map[string]*statLine{"a": file(1, 1, 1, 0o644)}, map[string]*statLine{"a": file(1, 2, 1, 0o644)}, []seen{{"a", "WRITE"}}},
		"touch":          {map[string]*statLine{"a": file(1, 1, 1, 0o644)}, map[string]*statLine{"a": file(1, 1, 2, 0o644)}, []seen{{"a", "WRITE"}}},
		"chmod":          {map[string]*statLine{"a": file(1, 1, 1, 0o644)}, map[string]*statLine{"a": file(1, 1, 1, 0o600)}, []seen{{"a", "CHMOD"}}},
		// An upload renames a new file over the old one.
		"replaced": {map[string]*statLine{"a": file(1, 1, 1, 0o644)}, map[string]*statLine{"a": file(2, 1, 1, 0o644)}, []seen{{"a", "WRITE"}}},
		"upload under way, then done": {
			map[string]*statLine{"a": file(1, 1, 1, 0o644), "d/.ak-upload-00": file(2, 5, 1, 0o644)},
			map[string]*statLine{"a": file(1, 1, 1, 0o644), "d/b": file(2, 9, 1, 0o644)},
			[]seen{{"d/b", "CREATE"}},
		},
		"rename":            {map[string]*statLine{"a": file(1, 1, 1, 0o644)}, map[string]*statLine{"b": file(1, 1, 1, 0o644)}, []seen{{"a", "RENAME"}, {"b", "CREATE"}}},
		"rename over":       {map[string]*statLine{"a": file(1, 1, 1, 0o644), "b": file(2, 1, 1, 0o644)}, map[string]*statLine{"b": file(1, 1, 1, 0o644)}, []seen{{"a", "RENAME"}, {"b", "WRITE"}}},
		"file to directory": {map[string]*statLine{"a": file(1, 1, 1, 0o644)}, map[string]*statLine{"a": dir(2)}, []seen{{"a", "REMOVE"}, {"a", "CREATE"}}},
		"directory mtime":   {map[string]*statLine{"d": dir(1)}, map[string]*statLine{"d": {mode: os.ModeDir | 0o755, inode: 1, mtime: 9}}, nil},
	} {
		got := eventsOf(diffSnapshots("/w", tc.old, tc.next, true))
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", name, got, tc.want)
				break
			}
		}
	}
}
