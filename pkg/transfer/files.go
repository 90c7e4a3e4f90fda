package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// Single-file work through a Runner, for callers that hand a sandbox's
// files to someone else (an agent over MCP) rather than to a local
// directory: read a bounded slice of a file, write one, list a directory.
// As everywhere, paths travel as arguments, never inside script text, and
// whatever comes back is untrusted: bounded while it streams, parsed
// strictly, names returned raw for the caller to validate.
const (
	// $1 = file, $2 = first byte to return, counting from 1.
	readFileScript = `[ -d "$1" ] && exit 21; [ -e "$1" ] || exit 66
if [ "$2" -le 1 ]; then exec cat -- "$1"; fi
exec tail -c +"$2" -- "$1"`
	// $1 = file, $2 = "append" or "", $3 = octal mode or "". Parent
	// directories are created; the content is stdin.
	writeFileScript = `f=$1
[ -d "$f" ] && exit 21
case $f in */*) mkdir -p -- "${f%/*}" || exit 1;; esac
if [ "$2" = append ]; then cat >>"$f" || exit 1; else cat >"$f" || exit 1; fi
[ -z "$3" ] || exec chmod -- "$3" "$f"`
	// $1 = directory, $2 = most entries. Prints "<type><name>\0" per entry
	// (f file, d directory, l symlink, o other), "m\0" if there were more,
	// an empty record, then the sizes of the regular files, one per line,
	// from a single stat (none if the image has no stat).
	listDirScript = `cd -- "$1" 2>/dev/null || { [ -e "$1" ] && exit 20; exit 66; }
max=$2 n=0
set --
for f in .[!.]* ..?* *; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	if [ "$n" -ge "$max" ]; then printf 'm\0'; break; fi
	n=$((n+1))
	if [ -L "$f" ]; then t=l; elif [ -d "$f" ]; then t=d; elif [ -f "$f" ]; then t=f; set -- "$@" "$f"; else t=o; fi
	printf '%s%s\0' "$t" "$f"
done
printf '\0'
[ "$#" -eq 0 ] || stat -c %s -- "$@" 2>/dev/null || :`
)

// Exit statuses of the scripts above.
const (
	exitIsDirectory  = 21 // EISDIR
	exitNotDirectory = 20 // ENOTDIR
)

// IsDirectoryError: a file operation named a directory.
type IsDirectoryError struct{ Path string }

func (e *IsDirectoryError) Error() string {
	return e.Path + " is a directory in the sandbox; list it instead"
}

// NotDirectoryError: a directory listing named something else.
type NotDirectoryError struct{ Path string }

func (e *NotDirectoryError) Error() string {
	return e.Path + " is not a directory in the sandbox; read it instead"
}

// fileError turns a script's exit status into the error a caller can act on.
func fileError(what, path string, err error, stderr *untrusted.Buffer) error {
	switch code, _ := sandbox.ExitCode(err); code {
	case exitNoSuchFile:
		return &NoSuchFileError{Path: path}
	case exitIsDirectory:
		return &IsDirectoryError{Path: path}
	case exitNotDirectory:
		return &NotDirectoryError{Path: path}
	}
	return copyError(what+" "+path, err, stderr)
}

// ReadFile returns at most limit bytes of the sandbox file path, starting
// offset bytes in, and whether the file had more. The stream is stopped as
// soon as the limit is passed: a sandbox cannot make the caller read more.
func ReadFile(ctx context.Context, r sandbox.Runner, path string, offset, limit int64) ([]byte, bool, error) {
	if offset < 0 || limit < 0 {
		return nil, false, fmt.Errorf("offset and limit must not be negative")
	}
	streamCtx, stop := context.WithCancel(ctx)
	defer stop()
	var buf bytes.Buffer
	out := &cappedWriter{w: &buf, limit: limit, stop: stop}
	var stderr untrusted.Buffer
	err := r.Run(streamCtx, []string{"sh", "-c", readFileScript, "sh", path, strconv.FormatInt(offset+1, 10)}, nil, out, &stderr)
	if out.exceeded && ctx.Err() == nil {
		return buf.Bytes(), true, nil // we ended the stream: its error is ours
	}
	if err != nil {
		return nil, false, fileError("reading", path, err, &stderr)
	}
	return buf.Bytes(), false, nil
}

// WriteOptions are the choices of WriteFile.
type WriteOptions struct {
	Append bool
	// Mode, if not zero, is chmod'ed onto the file (e.g. 0o755).
	Mode uint32
}

// WriteFile writes content to the sandbox file path, creating its parent
// directories.
func WriteFile(ctx context.Context, r sandbox.Runner, path string, content io.Reader, o WriteOptions) error {
	appendArg, modeArg := "", ""
	if o.Append {
		appendArg = "append"
	}
	if o.Mode != 0 {
		if o.Mode > 0o7777 {
			return fmt.Errorf("file mode %o is not a permission mode (at most 7777)", o.Mode)
		}
		modeArg = strconv.FormatUint(uint64(o.Mode), 8)
	}
	var stderr untrusted.Buffer
	err := r.Run(ctx, []string{"sh", "-c", writeFileScript, "sh", path, appendArg, modeArg}, content, io.Discard, &stderr)
	if err != nil {
		return fileError("writing", path, err, &stderr)
	}
	return nil
}

// DirEntry is one entry of a sandbox directory, as the sandbox reported it.
type DirEntry struct {
	// Name is untrusted: any bytes but '/' and NUL. Validate before use.
	Name string
	Type string // "file", "directory", "symlink" or "other"
	// Size of a regular file in bytes; -1 when unknown (not a regular
	// file, or the image has no stat).
	Size int64
}

// maxNameBytes is the longest file name Linux allows, plus the type byte.
const maxNameBytes = 255 + 1

// ListDir lists the directory path in the sandbox: at most maxEntries
// entries (in the shell's glob order), and whether there were more.
func ListDir(ctx context.Context, r sandbox.Runner, path string, maxEntries int) ([]DirEntry, bool, error) {
	if maxEntries <= 0 {
		return nil, false, fmt.Errorf("maxEntries must be positive")
	}
	streamCtx, stop := context.WithCancel(ctx)
	defer stop()
	// Every honest answer fits: names, the marker, and a size line per file.
	limit := int64(maxEntries)*(maxNameBytes+1+21) + 64
	var buf bytes.Buffer
	out := &cappedWriter{w: &buf, limit: limit, stop: stop}
	var stderr untrusted.Buffer
	err := r.Run(streamCtx, []string{"sh", "-c", listDirScript, "sh", path, strconv.Itoa(maxEntries)}, nil, out, &stderr)
	if out.exceeded {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, fmt.Errorf("listing %s: the sandbox sent more than an honest listing of %d entries can be", path, maxEntries)
	}
	if err != nil {
		return nil, false, fileError("listing", path, err, &stderr)
	}
	return parseListing(buf.Bytes(), maxEntries)
}

var errBadListing = errors.New("the sandbox's directory listing is malformed")

// parseListing reads listDirScript's output. Anything it does not expect is
// an error, never a guess.
func parseListing(b []byte, maxEntries int) ([]DirEntry, bool, error) {
	var entries []DirEntry
	more := false
	files := 0
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil, false, errBadListing
		}
		rec := b[:i]
		b = b[i+1:]
		if len(rec) == 0 {
			break
		}
		if more || len(rec) > maxNameBytes {
			return nil, false, errBadListing
		}
		if string(rec) == "m" {
			more = true
			continue
		}
		name := string(rec[1:])
		if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || len(entries) == maxEntries {
			return nil, false, errBadListing
		}
		e := DirEntry{Name: name, Size: -1}
		switch rec[0] {
		case 'f':
			e.Type = "file"
			files++
		case 'd':
			e.Type = "directory"
		case 'l':
			e.Type = "symlink"
		case 'o':
			e.Type = "other"
		default:
			return nil, false, errBadListing
		}
		entries = append(entries, e)
	}
	// Sizes are a best effort: a missing or partial answer leaves them unknown.
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if files == 0 || len(lines) != files {
		return entries, more, nil
	}
	sizes := make([]int64, files)
	for i, l := range lines {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil || n < 0 {
			return entries, more, nil
		}
		sizes[i] = n
	}
	j := 0
	for i := range entries {
		if entries[i].Type == "file" {
			entries[i].Size = sizes[j]
			j++
		}
	}
	return entries, more, nil
}
