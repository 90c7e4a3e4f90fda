//go:build linux

package agentmock

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The agent CLIs run here on the host, not in a sandbox's container; what
// of the container matters to them is reproduced around each run without
// privileges, mounts or namespaces, by this test binary itself: run again
// with containEnv set, it restricts itself, then execs the CLI.
//
//   - The seccomp rules of containerd's RuntimeDefault profile for a
//     container without CAP_SYS_ADMIN (containerd v2.4.2,
//     contrib/seccomp/seccomp_default.go) that an agent's own sandbox runs
//     into: unshare, setns and mount fail with EPERM, clone with a
//     namespace flag with EPERM, clone3 with ENOSYS. A user namespace, what
//     bubblewrap needs, cannot be made.
//   - A read-only root: Landlock lets the CLI write only beneath the
//     directories a sandbox has writable (its workspace, $HOME, /tmp;
//     here the test's temporary directories) and /dev.

// containEnv names the writable directories, separated by ":".
const containEnv = "AGENTMOCK_CONTAIN_WRITABLE"

func TestMain(m *testing.M) {
	if dirs, ok := os.LookupEnv(containEnv); ok {
		if err := containAndExec(strings.Split(dirs, ":"), os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "agentmock contain:", err)
			os.Exit(125)
		}
	}
	os.Exit(m.Run())
}

// needContainment skips where the kernel cannot reproduce the container.
func needContainment(t *testing.T) {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skipf("the container's seccomp rules are written here for amd64, not %s", runtime.GOARCH)
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION); e != 0 {
		t.Skipf("this kernel has no Landlock (%v), so a sandbox's read-only root cannot be reproduced around the agent CLIs", e)
	}
}

// contained turns a command into one that runs contained: this test binary
// with the writable directories in env.
func contained(env []string, writable []string, bin string, args ...string) ([]string, string, []string) {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return append(env, containEnv+"="+strings.Join(writable, ":")), self, append([]string{bin}, args...)
}

func containAndExec(writable, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("no command")
	}
	// Both restrictions hold for the calling thread and whatever it execs.
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if err := landlockWritable(writable); err != nil {
		return err
	}
	if err := seccompRuntimeDefault(); err != nil {
		return err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, containEnv+"=") {
			env = append(env, kv)
		}
	}
	return syscall.Exec(argv[0], argv, env)
}

func seccompRuntimeDefault() error {
	const (
		ld  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret = unix.BPF_RET | unix.BPF_K
		and = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
		// offsets in struct seccomp_data
		nr   = 0
		arch = 4
		arg0 = 16 // the low 32 bits, little-endian
	)
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("the seccomp rules are written for amd64, not %s", runtime.GOARCH)
	}
	ns := uint32(unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP)
	eperm := uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.EPERM)
	enosys := uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.ENOSYS)
	allow := uint32(unix.SECCOMP_RET_ALLOW)
	j := func(k uint32, jt, jf uint8) unix.SockFilter { return unix.SockFilter{Code: jeq, K: k, Jt: jt, Jf: jf} }
	s := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	prog := []unix.SockFilter{
		s(ld, arch),
		j(unix.AUDIT_ARCH_X86_64, 1, 0), s(ret, unix.SECCOMP_RET_KILL_PROCESS), // no other ABI's numbers
		s(ld, nr),
		j(unix.SYS_UNSHARE, 0, 1), s(ret, eperm),
		j(unix.SYS_SETNS, 0, 1), s(ret, eperm),
		j(unix.SYS_MOUNT, 0, 1), s(ret, eperm),
		j(unix.SYS_CLONE3, 0, 1), s(ret, enosys),
		j(unix.SYS_CLONE, 0, 5),
		s(ld, arg0), s(and, ns), j(0, 0, 1), s(ret, allow), s(ret, eperm),
		s(ret, allow),
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.Syscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return fmt.Errorf("seccomp: %w", e)
	}
	return nil
}

func landlockWritable(dirs []string) error {
	abi, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return fmt.Errorf("this kernel has no Landlock (%w): the read-only root cannot be reproduced", e)
	}
	write := uint64(unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM)
	if abi >= 2 {
		write |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		write |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	attr := unix.LandlockRulesetAttr{Access_fs: write}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if e != 0 {
		return fmt.Errorf("landlock ruleset: %w", e)
	}
	defer func() { _ = unix.Close(int(fd)) }()
	for _, d := range append(dirs, "/dev") {
		dfd, err := unix.Open(d, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("landlock: %s: %w", d, err)
		}
		rule := unix.LandlockPathBeneathAttr{Allowed_access: write, Parent_fd: int32(dfd)}
		_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule)), 0, 0, 0)
		_ = unix.Close(dfd)
		if e != 0 {
			return fmt.Errorf("landlock rule for %s: %w", d, e)
		}
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); e != 0 {
		return fmt.Errorf("landlock: %w", e)
	}
	return nil
}

// TestContainment: what the agents' tests rely on holds: no user
// namespace, and writes only where allowed.
func TestContainment(t *testing.T) {
	needContainment(t)
	allowed, other := t.TempDir(), t.TempDir()
	script := `set -u
echo ok > "$1/file" || exit 10
if echo no > "$2/file" 2>/dev/null; then exit 11; fi
if command -v unshare >/dev/null && unshare -U true 2>/dev/null; then exit 12; fi
exit 0`
	env, self, argv := contained([]string{"PATH=/usr/bin:/bin"}, []string{allowed}, "/bin/sh", "-c", script, "sh", allowed, other)
	cmd := exec.Command(self, argv...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v (exit 10: no write where allowed, 11: a write elsewhere, 12: a user namespace): %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(other, "file")); err == nil {
		t.Errorf("the contained shell wrote outside what it may write")
	}
}
