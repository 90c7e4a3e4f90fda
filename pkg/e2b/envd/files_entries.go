package envd

import (
	"bytes"
	"errors"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb"
)

// emitFunc is the sandbox side of every EntryInfo: `emit NAME...` prints
// the entries of its arguments in a framing no file name can forge, and
// that busybox and GNU coreutils both produce (stat -c, sh's printf):
//
//	B<n>\0 name\0 ×n  line\n ×n   n entries: the names, then one stat line each
//	L\0 name\0 target\0           a symlink's target
//
// A name is any bytes but NUL, so a NUL-terminated name ends where it
// says; a stat line holds numbers and the user and group names of the
// sandbox's passwd, never a file name, so one line per name is exact.
// One stat answers a whole batch; when it fails (a name vanished between
// find and stat) each name is stat'ed alone and the vanished ones are
// left out. readlink prints the target and a newline; the "x" keeps
// command substitution from eating a target's own trailing newlines.
const emitFunc = `emit() {
	if o=$(stat -c '%f %s %Y %u %g %i %U %G' -- "$@" 2>/dev/null); then
		printf 'B%d\0' "$#"; printf '%s\0' "$@"; printf '%s\n' "$o"
	else
		for f; do
			o=$(stat -c '%f %s %Y %u %g %i %U %G' -- "$f" 2>/dev/null) && printf 'B1\0%s\0%s\n' "$f" "$o"
		done
	fi
	for f; do
		if [ -L "$f" ] && t=$(readlink -- "$f" && echo x); then printf 'L\0%s\0%s\0' "$f" "${t%?x}"; fi
	done
	:
}
`

// Exit statuses the scripts share.
const (
	exitNotFound      = 66 // EX_NOINPUT: the path does not exist
	exitNotDirectory  = 20 // ENOTDIR
	exitIsDirectory   = 21 // EISDIR
	exitAlreadyExists = 17 // EEXIST
	exitNotEmpty      = 39 // ENOTEMPTY
	exitAccess        = 13 // EACCES
)

// listScript lists the directory $1 to depth $2 ("" for no limit) with
// emit, whose source is $3 (each batch find hands on runs a new sh). find starts in the directory itself (cd follows a symlink to it, as
// envd lists a symlinked directory) so every name comes back "./...", and
// find -exec hands emit batches as long as the exec's argument list allows.
const listScript = emitFunc + `cd -- "$1" 2>/dev/null || { [ -e "$1" ] && exit 20; exit 66; }
if [ -n "$2" ]; then
	exec find . -mindepth 1 -maxdepth "$2" -exec sh -c "$3"'
emit "$@"' emitsh {} +
fi
exec find . -mindepth 1 -exec sh -c "$3"'
emit "$@"' emitsh {} +`

// Limits on what one listing may bring back: an honest listing of
// maxListEntries names of at most maxPathBytes each fits in maxListBytes.
const (
	maxListEntries = 100_000
	maxPathBytes   = 4096
	maxStatLine    = 512
	maxListBytes   = 64 << 20
)

var errBadEntries = errors.New("the sandbox's file listing is malformed")

// statLine is one entry as the sandbox's stat described it.
type statLine struct {
	mode   fs.FileMode
	size   int64
	mtime  int64
	inode  uint64
	owner  string
	group  string
	target *string // a symlink's target
}

// parseEntries reads emit's output: the entries by the name each was
// emitted under. Anything it does not expect is an error, never a guess.
func parseEntries(b []byte) (map[string]*statLine, error) {
	out := map[string]*statLine{}
	field := func(max int) (string, bool) {
		i := bytes.IndexByte(b, 0)
		if i < 0 || i > max {
			return "", false
		}
		s := string(b[:i])
		b = b[i+1:]
		return s, true
	}
	for len(b) > 0 {
		switch b[0] {
		case 'B':
			b = b[1:]
			ns, ok := field(7)
			n, err := strconv.Atoi(ns)
			if !ok || err != nil || n < 1 || n > maxListEntries || strconv.Itoa(n) != ns {
				return nil, errBadEntries
			}
			names := make([]string, 0, min(n, 1024))
			for range n {
				name, ok := field(maxPathBytes)
				if !ok || name == "" {
					return nil, errBadEntries
				}
				names = append(names, name)
			}
			for _, name := range names {
				i := bytes.IndexByte(b, '\n')
				if i < 0 || i > maxStatLine {
					return nil, errBadEntries
				}
				st, err := parseStatLine(string(b[:i]))
				if err != nil {
					return nil, err
				}
				b = b[i+1:]
				if len(out) >= maxListEntries {
					return nil, errBadEntries
				}
				out[name] = st
			}
		case 'L':
			if len(b) < 2 || b[1] != 0 {
				return nil, errBadEntries
			}
			b = b[2:]
			name, ok1 := field(maxPathBytes)
			target, ok2 := field(maxPathBytes)
			st := out[name]
			if !ok1 || !ok2 || st == nil || st.mode&fs.ModeSymlink == 0 || st.target != nil {
				return nil, errBadEntries
			}
			st.target = &target
		default:
			return nil, errBadEntries
		}
	}
	return out, nil
}

// parseStatLine reads "RAWMODE_HEX SIZE MTIME UID GID INODE USER GROUP". The user
// and group names come from the sandbox's passwd; a name stat could not
// find (or one with spaces in it) falls back to the number.
func parseStatLine(l string) (*statLine, error) {
	f := strings.Split(l, " ")
	if len(f) < 6 {
		return nil, errBadEntries
	}
	raw, err1 := strconv.ParseUint(f[0], 16, 32)
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	mtime, err3 := strconv.ParseInt(f[2], 10, 64)
	_, err4 := strconv.ParseUint(f[3], 10, 32)
	_, err5 := strconv.ParseUint(f[4], 10, 32)
	inode, err6 := strconv.ParseUint(f[5], 10, 64)
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil || size < 0 {
		return nil, errBadEntries
	}
	st := &statLine{mode: unixMode(uint32(raw)), size: size, mtime: mtime, inode: inode, owner: f[3], group: f[4]}
	if len(f) == 8 && validAccountName(f[6]) && validAccountName(f[7]) {
		st.owner, st.group = f[6], f[7]
	}
	return st, nil
}

// validAccountName: what a shown owner may be (printable ASCII, bounded);
// anything else is shown as the number.
func validAccountName(s string) bool {
	if s == "" || len(s) > 64 || s == "UNKNOWN" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// unixMode turns a raw st_mode into Go's FileMode, whose String() is the
// permissions text envd answers (envd is Go and shows os.FileMode).
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	}
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// entryInfo is st as envd's EntryInfo for the absolute path p.
func (st *statLine) entryInfo(p string) *filesystempb.EntryInfo {
	t := filesystempb.FileType_FILE_TYPE_UNSPECIFIED
	switch {
	case st.mode.IsDir():
		t = filesystempb.FileType_FILE_TYPE_DIRECTORY
	case st.mode&fs.ModeSymlink != 0:
		t = filesystempb.FileType_FILE_TYPE_SYMLINK
	case st.mode.IsRegular():
		t = filesystempb.FileType_FILE_TYPE_FILE
	}
	var target *string
	if st.target != nil {
		t := validUTF8(*st.target)
		target = &t
	}
	p = validUTF8(p)
	return &filesystempb.EntryInfo{
		Name:          path.Base(p),
		Type:          t,
		Path:          p,
		Size:          st.size,
		Mode:          uint32(st.mode.Perm()),
		Permissions:   st.mode.String(),
		Owner:         st.owner,
		Group:         st.group,
		ModifiedTime:  timestamppb.New(time.Unix(st.mtime, 0)),
		SymlinkTarget: target,
	}
}

// validUTF8 is a name as a protobuf string can carry it: Linux names are
// bytes, proto3 strings UTF-8, and one bad name must not fail a whole
// listing. A run of bytes that is not UTF-8 becomes one U+FFFD, as the
// SDK's decoder would show it anyway.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
