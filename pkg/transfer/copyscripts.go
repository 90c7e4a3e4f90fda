package transfer

import "errors"

// Scripts run by sh in the sandbox. Paths travel as arguments ("$1"), never
// inside the script text, so no file name can inject shell code.
const (
	// $1 = destination, $2 = name of the payload's top-level entry, $3 =
	// the destination's parent. An existing directory receives the payload;
	// anything else becomes it (through a staging directory beside it, so a
	// failed copy leaves nothing). No tar at all exits 127 before anything.
	extractScript = `dest=$1 base=$2 parent=$3
command -v tar >/dev/null 2>&1 || exit 127
if [ -d "$dest" ]; then cd -- "$dest" || exit 1; exec tar -xf -; fi
mkdir -p -- "$parent" && tmp=$(mktemp -d "$parent/.agentkernel-cp.XXXXXX") || exit 1
tar -xf - -C "$tmp"; rc=$?
if [ "$rc" -eq 0 ]; then mv -f -- "$tmp/$base" "$dest" || rc=1; fi
rm -rf -- "$tmp"; exit "$rc"`
	// $1 = directory to create and extract into.
	extractIntoScript = `command -v tar >/dev/null 2>&1 || exit 127; mkdir -p -- "$1" && cd -- "$1" || exit 1; exec tar -xf -`
	// $1 = parent directory, $2 = ./name to archive. A missing path exits
	// exitNoSuchFile, so the user reads one clear line, not tar's complaint.
	archiveScript = `cd -- "$1" 2>/dev/null || exit 66; [ -e "$2" ] || [ -L "$2" ] || exit 66; exec tar -cf - "$2"`
	// Without tar: $1 = destination, $2 = file name, $3 = "into" or "",
	// $4 = the destination's parent. cat is not exec'd: the shell holds
	// the exec's stdout while it copies, as a CRI exec whose stdout ends
	// cuts its stdin (containerd#13934).
	catInScript  = `if [ "$3" = into ]; then mkdir -p -- "$1" || exit 1; t=$1/$2; elif [ -d "$1" ]; then t=$1/$2; else mkdir -p -- "$4" || exit 1; t=$1; fi; cat > "$t"; exit`
	catOutScript = `[ -e "$1" ] || exit 66; if [ -d "$1" ]; then echo "$1 is a directory; copying a directory needs tar in the sandbox image" >&2; exit 21; fi; exec cat "$1"`
)

// exitNotFound is the shell's status for "command not found": here, no tar.
const exitNotFound = 127

// exitNoSuchFile is archiveScript's status for a missing path (EX_NOINPUT).
const exitNoSuchFile = 66

// ErrNoTar explains what a sandbox image without tar can and cannot do.
var ErrNoTar = errors.New("the sandbox image has no tar, which copying a directory needs: use an image that has tar (e.g. the default busybox), or copy single files")
