// Package procs is the process model of a sandbox that runs no binary of
// ours (issue #23): a process started in a sandbox outlives the exec that
// started it and every request after; it can be listed, found by PID or
// tag, followed (its output from the start or from an offset until it
// ends, then its exact exit status), sent stdin, have its stdin closed,
// and be signalled, with nothing but sh and the tools every image has
// (see scripts.go). Nothing depends on the caller staying alive but a
// stream of output.
//
// It serves envd's Process service (pkg/e2b/envd) and the MCP tools that
// start a server, check on it later, read its output and end it. It speaks
// fields (Spec), never flags or RPC words.
//
// PID 1 (sandbox's pid1Script) counts a running process and its supervisor
// as busy, which is right for idle timeouts; once a process and the output
// it left are done, its supervisor ends too and nothing of ours is left.
package procs

import (
	"errors"
	"fmt"
	"path"
	"strconv"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Dir is where the sandbox keeps one directory per process: its PID, tag,
// spec, exit status and stdin FIFO. Memory-backed and small (RunDir), so no
// output ever goes there.
var Dir = path.Join(sandbox.RunDir, "procs")

// OutputDir is where the sandbox keeps the processes' output: /tmp is a
// disk-backed emptyDir (with the sandbox's ephemeral-storage limit), where
// RunDir is a 2 MiB memory-backed one that gets the Pod evicted when it
// overflows. The output is capped too (Procs.OutputCap).
var OutputDir = path.Join(sandbox.TmpDir, ".agentkernel-procs")

// Defaults of Procs.
const (
	// DefaultOutputCap bounds each output stream of a process: a
	// process that floods keeps running, and what it writes beyond is
	// dropped. DefaultKeep processes with both streams full hold 256 MiB
	// of /tmp, an eighth of a sandbox's default ephemeral storage (whose
	// overflow gets the Pod evicted too).
	DefaultOutputCap = 4 << 20
	// DefaultKeep process directories are kept: with maxConfig each, at
	// most 512 KiB of RunDir, which leaves room for the 1 MiB a claim's
	// environment may take. Finished ones are dropped, oldest first, to
	// start more; running ones never.
	DefaultKeep = 32
	// maxConfig bounds a process's spec as stored (JSON): its
	// environment rides in it.
	maxConfig = 16 << 10
	// maxFrame bounds one frame of output read from the sandbox.
	maxFrame = 256 << 10
)

// Procs reaches the processes of one sandbox.
type Procs struct {
	// Exec runs commands in the sandbox (a *sandbox.PodExec).
	Exec sandbox.Runner
	// OutputCap bounds each output stream of a process, in bytes
	// (DefaultOutputCap when 0).
	OutputCap int64
	// Keep is how many process directories are kept (DefaultKeep when 0).
	Keep int
	// Dir and OutputDir override the package's (tests).
	Dir, OutputDir string
}

// New returns the processes of the sandbox exec runs commands in.
func New(exec sandbox.Runner) *Procs { return &Procs{Exec: exec} }

// Spec is what to run.
type Spec struct {
	// Cmd is the program, found on the sandbox's PATH unless it has a
	// slash; Args its arguments (not including Cmd).
	Cmd  string   `json:"cmd"`
	Args []string `json:"args,omitempty"`
	// Env is added to the sandbox's environment.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is the working directory (the sandbox's when empty); it must
	// exist.
	Cwd string `json:"cwd,omitempty"`
	// Tag names the process for finding it later; need not be unique
	// (the running one wins).
	Tag string `json:"tag,omitempty"`
	// Stdin: the process reads what SendInput sends until CloseStdin;
	// otherwise it reads /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// Fallback runs in Cmd's place with the same arguments when the
	// sandbox has no Cmd (envd's clients ask for /bin/bash, which not
	// every image has; /bin/sh takes the same -l -c).
	Fallback string `json:"fallback,omitempty"`
}

// Selector picks a process: by PID if PID is set, else by Tag.
type Selector struct {
	PID int
	Tag string
}

func (s Selector) arg() (string, error) {
	switch {
	case s.PID > 0:
		return "pid:" + strconv.Itoa(s.PID), nil
	case s.Tag != "":
		if err := checkTag(s.Tag); err != nil {
			return "", err
		}
		return "tag:" + s.Tag, nil
	}
	return "", errors.New("no process named: give a pid or a tag")
}

func (s Selector) String() string {
	if s.PID > 0 {
		return "pid " + strconv.Itoa(s.PID)
	}
	return fmt.Sprintf("tag %q", s.Tag)
}

// State is where a process is in its life.
type State int

const (
	// Running: the process runs, or its output is still being drained
	// (something it started holds its stdout or stderr).
	Running State = iota
	// Exited: it has ended; Exit says how.
	Exited
	// Lost: it is gone without an exit status (its supervisor was
	// killed, by something in the sandbox).
	Lost
)

func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Exited:
		return "exited"
	}
	return "lost"
}

// Exit is how a process ended.
type Exit struct {
	// Code is the exit status as a shell reports it: 128+N for a
	// process killed by signal N.
	Code int
	// Signal is the signal that killed it, when this package sent it
	// (Signal) and Code says so; 0 when it exited by itself.
	Signal int
}

// Exited reports whether the process exited by itself (not by a signal).
func (e Exit) Exited() bool { return e.Signal == 0 }

// Status words the exit as Go's os.ProcessState does ("exit status 1",
// "signal: killed"): envd's EndEvent carries that.
func (e Exit) Status() string {
	if e.Signal != 0 {
		return "signal: " + signalWord(e.Signal)
	}
	return "exit status " + strconv.Itoa(e.Code)
}

// Process is one process as the sandbox reports it: untrusted, bounded.
type Process struct {
	PID int
	// ID is its directory's name in the sandbox.
	ID    string
	Spec  Spec
	State State
	Exit  Exit // when State is Exited
}

// Errors a caller tells apart.
var (
	// ErrNotFound: no process has that PID or tag.
	ErrNotFound = errors.New("no such process")
	// ErrEnded: the process has ended (signal, input).
	ErrEnded = errors.New("the process has ended")
	// ErrStdinClosed: the process was started without stdin, or its
	// stdin was closed.
	ErrStdinClosed = errors.New("the process's stdin is closed (or it was started without one)")
	// ErrTooMany: the sandbox runs DefaultKeep processes already.
	ErrTooMany = errors.New("too many processes are running in the sandbox")
)

// Signal is a signal this package sends.
type Signal int

// The signals a process may be sent.
const (
	SIGHUP  Signal = 1
	SIGINT  Signal = 2
	SIGKILL Signal = 9
	SIGTERM Signal = 15
)

var signalNames = map[Signal]string{SIGHUP: "HUP", SIGINT: "INT", SIGKILL: "KILL", SIGTERM: "TERM"}

// signalWord is Go's word for a signal in os.ProcessState.String.
func signalWord(n int) string {
	switch n {
	case 1:
		return "hangup"
	case 2:
		return "interrupt"
	case 3:
		return "quit"
	case 6:
		return "aborted"
	case 9:
		return "killed"
	case 13:
		return "broken pipe"
	case 15:
		return "terminated"
	}
	return "signal " + strconv.Itoa(n)
}
