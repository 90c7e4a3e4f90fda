package envd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb/filesystempbconnect"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// MaxUploadBytes bounds what one POST /files may write into a sandbox
// (all its files together, after gzip): a client cannot fill the sandbox's
// disk, or keep an exec streaming, without end through one request.
const MaxUploadBytes int64 = 4 << 30

// filesystemService answers filesystem.Filesystem and the /files routes.
type filesystemService struct {
	filesystempbconnect.UnimplementedFilesystemHandler
	maxUpload int64 // MaxUploadBytes; tests lower it
	watchers  *watchers
}

func newFilesystemService() *filesystemService {
	return &filesystemService{maxUpload: MaxUploadBytes, watchers: newWatchers()}
}

// The scripts of the single-path RPCs: each ends by emitting the entry it
// answers with, so one exec does the work and the stat.
const (
	statScript = emitFunc + `[ -e "$1" ] || [ -L "$1" ] || exit 66
emit "$1"`
	makeDirScript = emitFunc + `if [ -e "$1" ] || [ -L "$1" ]; then [ -d "$1" ] && exit 17; exit 20; fi
mkdir -p -- "$1" || exit 1
emit "$1"`
	// rename(2), as envd's os.Rename, replaces an empty directory with a
	// directory; mv would move the source into it instead.
	moveScript = emitFunc + `[ -e "$1" ] || [ -L "$1" ] || exit 66
d=${2%/*}
[ -z "$d" ] || mkdir -p -- "$d" || exit 1
if [ -d "$2" ] && [ ! -L "$2" ]; then
	[ -d "$1" ] && [ ! -L "$1" ] || exit 21
	rmdir -- "$2" 2>/dev/null || exit 39
fi
mv -f -- "$1" "$2" || exit 1
emit "$2"`
	// envd removes with os.RemoveAll: a path that is not there is removed.
	removeScript = `exec rm -rf -- "$1"`
)

// pathArg resolves an RPC's path, or answers InvalidArgument.
func pathArg(p string) (string, error) {
	abs, err := resolvePath(p)
	if err != nil {
		return "", connect.NewError(connect.CodeInvalidArgument, err)
	}
	return abs, nil
}

// quoted is a path as an error message shows it (envd: path '/x' ...).
func quoted(p string) string { return "'" + untrusted.Shown(p) + "'" }

// entryOf runs a single-path script and returns the one entry it emitted,
// that of the path want; (nil, how the script failed, nil) if it failed.
func entryOf(ctx context.Context, what, script, want string, args ...string) (*filesystempb.EntryInfo, scriptResult, error) {
	var out cappedBuffer
	out.limit = 2*maxPathBytes + maxStatLine + 64
	r := runScript(ctx, script, args, nil, &out)
	if !r.ok() {
		return nil, r, nil
	}
	if out.exceeded {
		return nil, r, connect.NewError(connect.CodeInternal, fmt.Errorf("%s: %w", what, errBadEntries))
	}
	entries, err := parseEntries(out.Bytes())
	st := entries[want]
	if err != nil || st == nil || len(entries) != 1 {
		return nil, r, connect.NewError(connect.CodeInternal, fmt.Errorf("%s: %w", what, errBadEntries))
	}
	return st.entryInfo(want), r, nil
}

func (*filesystemService) Stat(ctx context.Context, req *connect.Request[filesystempb.StatRequest]) (*connect.Response[filesystempb.StatResponse], error) {
	p, err := pathArg(req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	e, r, err := entryOf(ctx, "stat", statScript, p, p)
	if err != nil {
		return nil, err
	}
	if e == nil {
		if r.exited && r.code == exitNotFound {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("path %s does not exist", quoted(p)))
		}
		return nil, r.connectError("stat " + quoted(p))
	}
	return connect.NewResponse(&filesystempb.StatResponse{Entry: e}), nil
}

func (*filesystemService) MakeDir(ctx context.Context, req *connect.Request[filesystempb.MakeDirRequest]) (*connect.Response[filesystempb.MakeDirResponse], error) {
	p, err := pathArg(req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	e, r, err := entryOf(ctx, "make directory", makeDirScript, p, p)
	if err != nil {
		return nil, err
	}
	if e == nil {
		switch {
		case r.exited && r.code == exitAlreadyExists:
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("directory %s already exists", quoted(p)))
		case r.exited && r.code == exitNotDirectory:
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("path %s already exists and is not a directory", quoted(p)))
		}
		return nil, r.connectError("make directory " + quoted(p))
	}
	return connect.NewResponse(&filesystempb.MakeDirResponse{Entry: e}), nil
}

func (*filesystemService) Move(ctx context.Context, req *connect.Request[filesystempb.MoveRequest]) (*connect.Response[filesystempb.MoveResponse], error) {
	src, err := pathArg(req.Msg.GetSource())
	if err != nil {
		return nil, err
	}
	dst, err := pathArg(req.Msg.GetDestination())
	if err != nil {
		return nil, err
	}
	switch {
	case src == "/" || dst == "/":
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the root directory cannot be moved or replaced"))
	case src == dst:
		// rename(2) of a path onto itself does nothing; the script's
		// directory replacement would remove it.
		e, r, err := entryOf(ctx, "stat", statScript, src, src)
		if err == nil && e == nil {
			err = moveError(r, src, dst)
		}
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(&filesystempb.MoveResponse{Entry: e}), nil
	case strings.HasPrefix(dst, src+"/"):
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("cannot move %s into itself (%s)", quoted(src), quoted(dst)))
	}
	e, r, err := entryOf(ctx, "move", moveScript, dst, src, dst)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, moveError(r, src, dst)
	}
	return connect.NewResponse(&filesystempb.MoveResponse{Entry: e}), nil
}

func moveError(r scriptResult, src, dst string) error {
	if r.exited {
		switch r.code {
		case exitNotFound:
			return connect.NewError(connect.CodeNotFound, fmt.Errorf("path %s does not exist", quoted(src)))
		case exitIsDirectory:
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("cannot move %s onto the directory %s: it is not a directory", quoted(src), quoted(dst)))
		case exitNotEmpty:
			return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("cannot move %s onto %s: it is a directory that is not empty", quoted(src), quoted(dst)))
		}
	}
	return r.connectError("move " + quoted(src) + " to " + quoted(dst))
}

func (*filesystemService) Remove(ctx context.Context, req *connect.Request[filesystempb.RemoveRequest]) (*connect.Response[filesystempb.RemoveResponse], error) {
	p, err := pathArg(req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	if p == "/" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the root directory cannot be removed"))
	}
	if r := runScript(ctx, removeScript, []string{p}, nil, nil); !r.ok() {
		return nil, r.connectError("remove " + quoted(p))
	}
	return connect.NewResponse(&filesystempb.RemoveResponse{}), nil
}

func (*filesystemService) ListDir(ctx context.Context, req *connect.Request[filesystempb.ListDirRequest]) (*connect.Response[filesystempb.ListDirResponse], error) {
	p, err := pathArg(req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	depth := min(max(req.Msg.GetDepth(), 1), maxListDepth)
	entries, err := listTree(ctx, p, strconv.FormatUint(uint64(depth), 10), maxListEntries)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&filesystempb.ListDirResponse{Entries: entries}), nil
}

// maxListDepth is deeper than any tree a listing of maxListEntries can
// show, and a number every find takes.
const maxListDepth = 4096

// listTree lists the directory p to depth ("" for all of it), at most
// maxEntries entries, sorted by path.
func listTree(ctx context.Context, p, depth string, maxEntries int) ([]*filesystempb.EntryInfo, error) {
	stats, err := listRaw(ctx, p, depth, maxEntries)
	if err != nil {
		return nil, err
	}
	list := make([]*filesystempb.EntryInfo, 0, len(stats))
	for rel, st := range stats {
		list = append(list, st.entryInfo(path.Join(p, rel)))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	return list, nil
}

// listRaw lists the directory p to depth ("" for all of it): at most
// maxEntries entries by their path relative to p.
func listRaw(ctx context.Context, p, depth string, maxEntries int) (map[string]*statLine, error) {
	var out cappedBuffer
	out.limit = maxListBytes
	r := runScript(ctx, listScript, []string{p, depth, emitFunc}, nil, &out)
	if !r.ok() {
		switch {
		case r.exited && r.code == exitNotFound:
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("path %s does not exist", quoted(p)))
		case r.exited && r.code == exitNotDirectory:
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("path %s is not a directory", quoted(p)))
		}
		if !out.exceeded {
			return nil, r.connectError("list " + quoted(p))
		}
	}
	if out.exceeded {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("listing %s: more than %d MiB of entries; list or watch a directory deeper down, or list to a smaller depth", quoted(p), maxListBytes>>20))
	}
	stats, err := parseEntries(out.Bytes())
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("listing %s: %w", quoted(p), err))
	}
	if len(stats) > maxEntries {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("listing %s: more than %d entries; list or watch a directory deeper down, or list to a smaller depth", quoted(p), maxEntries))
	}
	rels := make(map[string]*statLine, len(stats))
	for name, st := range stats {
		rel, ok := relListed(name)
		if !ok {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("listing %s: %w", quoted(p), errBadEntries))
		}
		rels[rel] = st
	}
	return rels, nil
}

// relListed is the relative path of a name find printed ("./a/b" is
// "a/b"); a name that is not one (a sandbox's forgery) is refused.
func relListed(name string) (string, bool) {
	rel, ok := strings.CutPrefix(name, "./")
	if !ok || rel == "" || path.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// cappedBuffer keeps what a sandbox prints up to limit bytes, and then
// fails the write: the exec ends and the caller reports the excess.
type cappedBuffer struct {
	bytes.Buffer
	limit    int
	exceeded bool
}

var errOutputTooLarge = errors.New("the sandbox printed more than an honest answer can be")

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.Len()+len(p) > c.limit {
		c.exceeded = true
		return 0, errOutputTooLarge
	}
	return c.Buffer.Write(p)
}
