package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"
	"syscall"

	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// The rule for a symlink that comes out of a sandbox.
//
// Checking where a link resolves *now* is not enough: a name that does not
// exist yet can later (in the same stream, or a later copy into the same
// tree) become a link, and `l -> x/x/../../secret` is harmless until
// `x -> .` arrives. So a kept link must be safe against anything later
// entries can do, and the rule is one that is closed under them:
//
//   - its target is relative, at most PATH_MAX bytes, has no ".." component
//     and names at least one entry below the link's own directory (not
//     ".", which would let another link's ".." climb from it);
//   - resolving it now, through the links already in the tree, passes
//     only through links that obey the same lexical rule (a link the user
//     already had that climbs, e.g. `up -> ../..`, is not a way out for
//     the sandbox), in at most maxLinkHops links and maxLinkSteps names;
//   - if it leads to a name that does not exist yet, the tree holds no link
//     that climbs: a later copy could make that name a link to the
//     directory holding one (`l -> m/up/x`, then `m -> dir-with-up`).
//
// Every link the sandbox can write then goes strictly down from where it
// stands, so following any chain of them only ever descends; directories
// are never replaced by a copy; so no later entry can make a kept link lead
// outside. Nothing needs re-checking at the end of a stream, and a stream
// that fails half-way leaves nothing that escapes.
const (
	maxPath      = 4096 // PATH_MAX: the kernel follows no longer link
	maxLinkHops  = 40   // the kernel's limit on links followed in one lookup
	maxLinkSteps = 4096 // names looked at in one check, links expanded
)

// symlink writes the link rel -> target if linkRefusal allows it, with a
// warning otherwise; name is the entry's name in the stream.
func (x *extractor) symlink(rel, name, target string) error {
	dir, base, err := x.parent(rel)
	if err != nil {
		return err
	}
	why, err := linkRefusal(x, dir, base, target)
	if err != nil {
		return err
	}
	if why != "" {
		fmt.Fprintf(x.warn, "warning: skipping symlink %q -> %q: %s\n", untrusted.Shown(name), untrusted.Shown(target), why)
		return nil
	}
	if err := removeExisting(dir, base); err != nil {
		return err
	}
	return dir.Symlink(target, base)
}

// climbs says why target does not go strictly down from its link's
// directory ("" if it does). Linear in the target, which is bounded first.
func climbs(target string) string {
	switch {
	case target == "":
		return "it is empty"
	case len(target) > maxPath:
		return fmt.Sprintf("its target is longer than %d bytes", maxPath)
	case strings.ContainsRune(target, 0):
		return "its target holds a NUL byte"
	case path.IsAbs(target):
		return "its target is absolute"
	case runtime.GOOS == "windows" && strings.ContainsAny(target, `\:`):
		return "its target holds a character Windows treats as a separator"
	}
	names := 0
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			return "its target climbs with '..' (kept links may only lead down from where they are)"
		default:
			names++
		}
	}
	if names == 0 {
		return "it names its own directory"
	}
	return ""
}

// linkRefusal says why a link self -> target in dir may not be kept (""
// if it may); an error only for a cancelled copy or a failing file system.
// Resolution goes one directory at a time from dir, one system call per
// name: linear, and never above dir, since every link it meets goes down.
func linkRefusal(x *extractor, dir *os.Root, self, target string) (string, error) {
	if why := climbs(target); why != "" {
		return why, nil
	}
	// pending holds the names still to resolve, the next one last.
	var pending []string
	push := func(target string) {
		parts := strings.Split(target, "/")
		for i := len(parts) - 1; i >= 0; i-- {
			pending = append(pending, parts[i])
		}
	}
	push(target)
	at := dir
	var opened *os.Root // at, when this function opened it
	defer func() {
		if opened != nil {
			opened.Close()
		}
	}()
	hops := 0
	for steps := 0; len(pending) > 0; steps++ {
		if steps > maxLinkSteps {
			return "it takes too many steps to resolve", nil
		}
		if steps%256 == 0 {
			if err := x.ctx.Err(); err != nil {
				return "", err
			}
		}
		c := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if c == "" || c == "." {
			continue
		}
		if at == dir && c == self {
			// The link itself, not written yet: a loop through it.
			if hops++; hops > maxLinkHops {
				return "it goes through too many links (a loop?)", nil
			}
			push(target)
			continue
		}
		info, err := at.Lstat(c)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENAMETOOLONG):
			// The rest does not exist yet: whatever a later entry makes of
			// it is a directory or a link under this same rule, which can
			// lead anywhere below the tree, so to any link that climbs.
			if len(pending) == 0 {
				return "", nil // nothing is looked up below the missing name
			}
			climbing, err := x.treeHasClimbingLink()
			if err != nil {
				return "", err
			}
			if climbing != "" {
				return fmt.Sprintf("it leads through %q, which does not exist yet and could later lead to %q, a link already here that climbs", untrusted.Shown(c), untrusted.Shown(climbing)), nil
			}
			return "", nil
		case err != nil:
			return "", err
		case info.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > maxLinkHops {
				return "it goes through too many links (a loop?)", nil
			}
			link, err := at.Readlink(c)
			if err != nil {
				return "", err
			}
			if why := climbs(link); why != "" {
				return fmt.Sprintf("it goes through %q, a link that does not lead down (%s)", untrusted.Shown(c), why), nil
			}
			push(link) // resolved from at, the directory that holds c
		case info.IsDir():
			next, err := at.OpenRoot(c)
			if err != nil {
				return "", err
			}
			if opened != nil {
				opened.Close()
			}
			at, opened = next, next
		default:
			// A file: the kernel stops here. A later entry can only replace
			// it with another file or a link under this rule.
			return "", nil
		}
	}
	return "", nil
}

// treeHasClimbingLink names a link in the tree (the user's: a copy makes
// none) whose target is absolute or climbs, or "" if there is none. The
// tree is walked once per copy, and only when a link leads to a name that
// does not exist yet.
func (x *extractor) treeHasClimbingLink() (string, error) {
	if x.climbingChecked {
		return x.climbing, nil
	}
	n := 0
	err := fs.WalkDir(x.tree.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: nothing there can be followed by us either
		}
		if n++; n%256 == 0 {
			if err := x.ctx.Err(); err != nil {
				return err
			}
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := x.tree.Readlink(p)
		if err != nil || climbs(target) != "" {
			x.climbing = p
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	x.climbingChecked = true
	return x.climbing, nil
}
