package localcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one started component. Each runs in its own session and process
// group (Setsid), so stopping it signals exactly the group it leads: the
// component and whatever it started (kwok's exec'd commands), nothing else.
type proc struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// StartTicks is field 22 of /proc/PID/stat at start. A PID whose start
	// time differs was reused by an unrelated process and is not touched.
	StartTicks uint64 `json:"startTicks"`
	Log        string `json:"log"`

	// done is closed when the process was reaped; only set in the process
	// that started it (Attach cannot wait for a non-child).
	done    chan struct{}
	waitErr error
}

// startProc starts argv in dir, in a session of its own (away from the
// caller's terminal), with stdout and stderr appended to logPath. Unless
// detach, it is killed when the calling process dies.
func startProc(name string, argv, env []string, logPath, dir string, detach bool) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "=== %s: %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(quoteArgs(argv), " "))
	// Not CommandContext: the components outlive the context of Up (and
	// the `up` command itself).
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if !detach {
		// A test killed by -timeout or a panic does not run Down; this
		// keeps its cluster from running on.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{Name: name, PID: cmd.Process.Pid, Log: logPath, done: make(chan struct{})}
	p.StartTicks, _ = procStartTicks(p.PID)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func quoteArgs(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if strings.ContainsAny(a, " \n\t'\"$") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

// exited reports whether p is known to have stopped, and how.
func (p *proc) exited() (bool, error) {
	if p.done != nil {
		select {
		case <-p.done:
			return true, p.waitErr
		default:
			return false, nil
		}
	}
	return !p.alive(), nil
}

// alive reports whether p's own PID still runs (as the process we started).
func (p *proc) alive() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
		}
	}
	st, err := readStat(p.PID)
	if err != nil || st.state == 'Z' || st.state == 'X' {
		return false
	}
	return p.StartTicks == 0 || st.startTicks == p.StartTicks
}

// groupMembers lists the live (non-zombie) processes in process group pgid.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.pgrp != pgid || st.state == 'Z' || st.state == 'X' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// signalGroup signals p's process group, unless p's PID now belongs to a
// different process. (Linux does not hand out a PID that is still a
// process-group ID, so the members of group p.PID are ours.)
func (p *proc) signalGroup(sig syscall.Signal) {
	if st, err := readStat(p.PID); err == nil && p.StartTicks != 0 && st.startTicks != p.StartTicks {
		return
	}
	_ = syscall.Kill(-p.PID, sig)
}

// stopProcs stops procs one at a time, last started first (kwok and the
// controllers before the apiserver, the apiserver before etcd: an apiserver
// whose etcd is gone takes its whole grace period to shut down): SIGTERM to
// the group, up to grace to exit, then SIGKILL. It returns an error naming
// any process that survived.
func stopProcs(procs []*proc, grace time.Duration) error {
	var left []string
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		one := []*proc{p}
		p.signalGroup(syscall.SIGTERM)
		if waitGone(one, grace) {
			continue
		}
		p.signalGroup(syscall.SIGKILL)
		if !waitGone(one, 10*time.Second) {
			left = append(left, fmt.Sprintf("%s (group %d: %v)", p.Name, p.PID, groupMembers(p.PID)))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("processes survived SIGKILL: %s", strings.Join(left, ", "))
	}
	return nil
}

// waitGone waits until every proc and its group are gone.
func waitGone(procs []*proc, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		gone := true
		for _, p := range procs {
			if p.alive() || len(groupMembers(p.PID)) > 0 {
				gone = false
				break
			}
		}
		if gone {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type procStat struct {
	state      byte
	pgrp       int
	startTicks uint64
}

// readStat parses /proc/PID/stat. The command name (field 2) may contain
// spaces and parentheses, so fields are counted after its last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field N is f[N-3].
	if len(f) < 20 {
		return procStat{}, errors.New("short /proc stat")
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, err
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, err
	}
	return procStat{state: f[0][0], pgrp: pgrp, startTicks: start}, nil
}

func procStartTicks(pid int) (uint64, error) {
	st, err := readStat(pid)
	return st.startTicks, err
}

// logTail returns the last n lines of path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// componentError says which component failed and shows the end of its log.
func componentError(p *proc, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return fmt.Errorf("%s: %s\n--- last lines of %s ---\n%s\n---", p.Name, msg, p.Log, logTail(p.Log, 30))
}
