package mcp

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/procs"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// The background-process tools (issue #23): an agent starts a process
// that outlives the call (a dev server, a watcher, a long build), checks
// on it later, reads its output in pieces, writes to its stdin and ends
// it. The process model is pkg/procs: it needs nothing in the sandbox but
// sh, and each call is one or a few exec streams, confirmed as every
// tool's are.
const (
	toolStartProcess  = "start_process"
	toolListProcesses = "list_processes"
	toolProcessOutput = "process_output"
	toolProcessInput  = "send_process_input"
	toolKillProcess   = "kill_process"
)

// newProcs reaches the processes of the sandbox run execs in. Tests point
// it at directories of their own: the host stands in for the sandbox.
var newProcs = func(run sandbox.Runner) *procs.Procs { return procs.New(run) }

func (s *Server) addProcessTools() {
	addTool(s, toolStartProcess, "Start a background process in a sandbox", hints{destructive: true, openWorld: true},
		"Start a process in a sandbox that keeps running after this call (a dev server, a watcher, a long build) and return its pid at once. "+
			"Give command (an argv, no shell) or shell (a sh -c command line). Check on it with process_output, "+
			"write to it with send_process_input (start it with open_stdin), end it with kill_process.",
		nil, s.startProcess)
	addTool(s, toolListProcesses, "List background processes in a sandbox", hints{readOnly: true},
		"List the background processes of a sandbox that start_process started: running ones, and ended ones with their exit code "+
			"(the oldest ended ones are dropped as new ones start).",
		nil, s.listProcesses)
	addTool(s, toolProcessOutput, "Read a background process's output", hints{readOnly: true},
		"Read what a background process wrote to stdout and stderr since the given offsets (bounded; read again from next_stdout_offset and "+
			"next_stderr_offset for the rest), and whether it still runs or how it ended. wait_seconds waits for it to end, or for max_bytes of output.",
		enums{"encoding": encodings()}, s.processOutput)
	addTool(s, toolProcessInput, "Write to a background process's stdin", hints{destructive: true},
		"Write data to the stdin of a background process started with open_stdin, and/or close its stdin (it then reads end of file).",
		enums{"encoding": encodings()}, s.processInput)
	addTool(s, toolKillProcess, "Stop a background process", hints{destructive: true, idempotent: true},
		"Send a signal (TERM by default, or KILL, INT, HUP) to a background process and every process it started, and wait a little for it to end. "+
			"A process that has ended already is no error.",
		enums{"signal": signalNames()}, s.killProcess)
}

// selector names a process of a sandbox: by pid or by tag (each tool's
// input has both, with the words of pidDoc and tagDoc).
func selector(pid int, tag string) (procs.Selector, error) {
	switch {
	case pid < 0:
		return procs.Selector{}, errors.New("pid must be a positive number")
	case pid > 0 && tag != "":
		return procs.Selector{}, errors.New("give either pid or tag, not both")
	case pid == 0 && tag == "":
		return procs.Selector{}, fmt.Errorf("name the process: give its pid (or its tag); %s lists them", toolListProcesses)
	}
	return procs.Selector{PID: pid, Tag: tag}, nil
}

// StartProcessInput is a process to start.
type StartProcessInput struct {
	Sandbox   string            `json:"sandbox" jsonschema:"name of the sandbox"`
	Command   []string          `json:"command,omitempty" jsonschema:"the command and its arguments, run without a shell, e.g. [\"python3\", \"-m\", \"http.server\", \"8000\"]"`
	Shell     string            `json:"shell,omitempty" jsonschema:"a command line for sh -c, e.g. \"npm run dev 2>&1\" (give command or shell, not both)"`
	Workdir   string            `json:"workdir,omitempty" jsonschema:"working directory, which must exist (relative paths start at /workspace; default /workspace)"`
	Env       map[string]string `json:"env,omitempty" jsonschema:"extra environment variables (names of letters, digits and _); kept in the sandbox while the process is listed"`
	Tag       string            `json:"tag,omitempty" jsonschema:"a name to find the process by later instead of its pid, e.g. \"dev-server\""`
	OpenStdin bool              `json:"open_stdin,omitempty" jsonschema:"keep the process's stdin open for send_process_input (otherwise it reads nothing)"`
}

// StartProcessOutput is the process that was started.
type StartProcessOutput struct {
	PID     int    `json:"pid" jsonschema:"the process's pid: name it to process_output, send_process_input and kill_process"`
	Tag     string `json:"tag,omitempty"`
	State   string `json:"state" jsonschema:"running"`
	Resumed string `json:"resumed,omitempty" jsonschema:"the sandbox was suspended and this call resumed it first: since when and why"`
}

func (s *Server) startProcess(ctx context.Context, in StartProcessInput) (StartProcessOutput, error) {
	spec, err := processSpec(in)
	if err != nil {
		return StartProcessOutput{}, err
	}
	t, resumed, err := s.ready(ctx, in.Sandbox, true)
	if err != nil {
		return StartProcessOutput{}, err
	}
	p, err := newProcs(t.run).Start(ctx, spec)
	if err != nil {
		return StartProcessOutput{}, s.processError(ctx, t, resumed, procs.Selector{}, err)
	}
	s.log.Info("started a background process", "sandbox", t.name, "pid", p.PID)
	return StartProcessOutput{PID: p.PID, Tag: spec.Tag, State: p.State.String(), Resumed: resumed}, nil
}

// processSpec is what to run, as exec takes it: an argv or a sh -c line.
func processSpec(in StartProcessInput) (procs.Spec, error) {
	spec := procs.Spec{Env: in.Env, Tag: in.Tag, Stdin: in.OpenStdin}
	switch {
	case len(in.Command) > 0 && in.Shell != "":
		return spec, errors.New("give either command (an argv) or shell (a sh -c line), not both")
	case len(in.Command) > 0:
		if in.Command[0] == "" {
			return spec, errors.New("command's first word, the program, is empty")
		}
		spec.Cmd, spec.Args = in.Command[0], in.Command[1:]
	case in.Shell != "":
		spec.Cmd, spec.Args = "sh", []string{"-c", in.Shell}
	default:
		return spec, errors.New(`nothing to run: give command (e.g. ["npm", "run", "dev"]) or shell (e.g. "npm run dev 2>&1")`)
	}
	if in.Workdir != "" {
		dir, err := transfer.CleanRemotePath(in.Workdir)
		if err != nil {
			return spec, fmt.Errorf("workdir: %v", err)
		}
		if dir = strings.TrimSuffix(dir, "/"); dir == "" {
			dir = "/"
		}
		spec.Cwd = dir
	}
	return spec, nil
}

// ListProcessesInput names a sandbox.
type ListProcessesInput struct {
	Sandbox string `json:"sandbox" jsonschema:"name of the sandbox"`
}

// ListProcessesOutput is a sandbox's background processes.
type ListProcessesOutput struct {
	Processes []ProcessInfo `json:"processes"`
	Resumed   string        `json:"resumed,omitempty" jsonschema:"the sandbox was suspended and this call resumed it first (its processes ended with its Pod)"`
}

// ProcessInfo is one process as the sandbox reports it: untrusted, so
// its words are cleaned and bounded, and its environment's values are
// never shown.
type ProcessInfo struct {
	PID      int      `json:"pid"`
	Tag      string   `json:"tag,omitempty"`
	Command  string   `json:"command" jsonschema:"the program and its arguments, shortened"`
	Workdir  string   `json:"workdir,omitempty"`
	EnvNames []string `json:"env_names,omitempty" jsonschema:"the names of the extra environment variables it was given"`
	State    string   `json:"state" jsonschema:"running, exited, or lost (gone without an exit code)"`
	Exit     *Exit    `json:"exit,omitempty" jsonschema:"how it ended, once it has"`
}

// Exit is how a process ended.
type Exit struct {
	Code   int    `json:"code" jsonschema:"the exit code as a shell reports it: 128+N for a process killed by signal N"`
	Signal string `json:"signal,omitempty" jsonschema:"the signal kill_process sent that ended it"`
}

func exitOf(st procs.State, e procs.Exit) *Exit {
	if st != procs.Exited {
		return nil
	}
	out := &Exit{Code: e.Code}
	if !e.Exited() {
		out.Signal = signalName(e.Signal)
	}
	return out
}

// The most list_processes shows of a process's words.
const (
	shownCommand = 300
	shownWord    = 200
	shownEnv     = 50
)

func (s *Server) listProcesses(ctx context.Context, in ListProcessesInput) (ListProcessesOutput, error) {
	t, resumed, err := s.ready(ctx, in.Sandbox, true)
	if err != nil {
		return ListProcessesOutput{}, err
	}
	all, err := newProcs(t.run).List(ctx)
	if err != nil {
		return ListProcessesOutput{}, s.processError(ctx, t, resumed, procs.Selector{}, err)
	}
	out := ListProcessesOutput{Processes: make([]ProcessInfo, 0, len(all)), Resumed: resumed}
	for _, p := range all {
		out.Processes = append(out.Processes, processInfo(p))
	}
	// Running ones first, then by pid: what an agent looks for is on top.
	sort.SliceStable(out.Processes, func(i, j int) bool {
		a, b := out.Processes[i], out.Processes[j]
		if (a.State == "running") != (b.State == "running") {
			return a.State == "running"
		}
		return a.PID < b.PID
	})
	return out, nil
}

func processInfo(p procs.Process) ProcessInfo {
	words := append([]string{p.Spec.Cmd}, p.Spec.Args...)
	for i, w := range words {
		if strings.ContainsAny(w, " \t\n'\"") || w == "" {
			w = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		words[i] = untrusted.Line(w, shownWord)
	}
	info := ProcessInfo{
		PID:     p.PID,
		Tag:     untrusted.Line(p.Spec.Tag, shownWord),
		Command: untrusted.Line(strings.Join(words, " "), shownCommand),
		Workdir: untrusted.Line(p.Spec.Cwd, shownWord),
		State:   p.State.String(),
		Exit:    exitOf(p.State, p.Exit),
	}
	for k := range p.Spec.Env {
		if len(info.EnvNames) == shownEnv {
			break
		}
		info.EnvNames = append(info.EnvNames, untrusted.Line(k, shownWord))
	}
	sort.Strings(info.EnvNames)
	return info
}

// processError is what an agent reads when a process call fails: the
// process model's errors with the tool to use next, and a transport
// failure as the sandbox's state when that is why (deleted, stopped).
// resumed: this call resumed the sandbox, whose processes ended with the
// Pod it was suspended from.
func (s *Server) processError(ctx context.Context, t target, resumed string, sel procs.Selector, err error) error {
	switch {
	case ctx.Err() != nil:
		return err
	case errors.Is(err, procs.ErrNotFound) && resumed != "":
		return fmt.Errorf("sandbox %q has no background process with %s: it was %s, and this call resumed it; its processes ended with its Pod: start them again with %s", t.name, sel, resumed, toolStartProcess)
	case errors.Is(err, procs.ErrNotFound):
		return fmt.Errorf("sandbox %q has no background process with %s; %s lists them (processes end with the sandbox's Pod)", t.name, sel, toolListProcesses)
	case errors.Is(err, procs.ErrStdinClosed):
		return fmt.Errorf("the stdin of the process with %s in sandbox %q is closed, or it was started without open_stdin; start it with open_stdin to write to it", sel, t.name)
	case errors.Is(err, procs.ErrEnded):
		return fmt.Errorf("the process with %s in sandbox %q has ended; process_output says how", sel, t.name)
	case errors.Is(err, procs.ErrTooMany):
		return fmt.Errorf("%v; end one with %s first", err, toolKillProcess)
	}
	if _, ok := sandbox.ExitCode(err); !ok {
		if gone := s.scope.recheck(ctx, t); gone != nil {
			return gone
		}
	}
	return err
}
