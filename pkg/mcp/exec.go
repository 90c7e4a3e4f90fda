package mcp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
)

// ExecInput is one command to run.
type ExecInput struct {
	Sandbox        string            `json:"sandbox" jsonschema:"name of the sandbox"`
	Command        []string          `json:"command,omitempty" jsonschema:"the command and its arguments, run without a shell, e.g. [\"ls\", \"-la\"]"`
	Shell          string            `json:"shell,omitempty" jsonschema:"a command line for sh -c, e.g. \"make test 2>&1 | tail -50\" (give command or shell, not both)"`
	Stdin          string            `json:"stdin,omitempty" jsonschema:"text given to the command's standard input"`
	StdinBase64    bool              `json:"stdin_base64,omitempty" jsonschema:"stdin is base64 of the bytes to send"`
	Workdir        string            `json:"workdir,omitempty" jsonschema:"working directory (relative paths start at /workspace; default /workspace)"`
	Env            map[string]string `json:"env,omitempty" jsonschema:"extra environment variables; they travel in the exec request, so never secrets"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty" jsonschema:"give up after this many seconds (default and most: the server's exec timeout)"`
}

// ExecOutput is what the command did. Its output is untrusted: bounded,
// with control characters replaced.
type ExecOutput struct {
	ExitCode        int    `json:"exit_code" jsonschema:"the command's exit code (-1 if it timed out)"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	StdoutBytes     int64  `json:"stdout_bytes" jsonschema:"bytes the command wrote to stdout, shown or not"`
	StderrBytes     int64  `json:"stderr_bytes" jsonschema:"bytes the command wrote to stderr, shown or not"`
	TimedOut        bool   `json:"timed_out" jsonschema:"the timeout ended the call; the command may still be running in the sandbox"`
	DurationMillis  int64  `json:"duration_ms"`
	Resumed         string `json:"resumed,omitempty" jsonschema:"the sandbox was suspended and this call resumed it first: since when and why"`
}

func (s *Server) exec(ctx context.Context, in ExecInput) (ExecOutput, error) {
	command, err := s.execCommand(in)
	if err != nil {
		return ExecOutput{}, err
	}
	timeout := s.o.Limits.ExecTimeout
	if in.TimeoutSeconds < 0 || time.Duration(in.TimeoutSeconds)*time.Second > timeout {
		return ExecOutput{}, fmt.Errorf("timeout_seconds must be between 1 and %d (the server's exec timeout)", int(timeout.Seconds()))
	} else if in.TimeoutSeconds > 0 {
		timeout = time.Duration(in.TimeoutSeconds) * time.Second
	}
	var stdin io.Reader
	if in.StdinBase64 {
		b, err := base64.StdEncoding.DecodeString(in.Stdin)
		if err != nil {
			return ExecOutput{}, fmt.Errorf("stdin is not valid base64: %v", err)
		}
		if len(b) > 0 {
			stdin = strings.NewReader(string(b))
		}
	} else if in.Stdin != "" {
		stdin = strings.NewReader(in.Stdin)
	}
	t, resumed, err := s.ready(ctx, in.Sandbox, false)
	if err != nil {
		return ExecOutput{}, err
	}

	stdout := &capture{limit: s.o.Limits.OutputBytes}
	stderr := &capture{limit: s.o.Limits.OutputBytes}
	execCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	code, err := s.run(ctx, execCtx, t, command, stdin, stdout, stderr)
	out := ExecOutput{ExitCode: code, DurationMillis: time.Since(start).Milliseconds(), Resumed: resumed}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ExecOutput{}, ctx.Err()
	case errors.Is(execCtx.Err(), context.DeadlineExceeded):
		out.ExitCode, out.TimedOut = -1, true
	default:
		if gone := s.scope.recheck(ctx, t); gone != nil {
			return ExecOutput{}, gone
		}
		return ExecOutput{}, fmt.Errorf("exec in sandbox %q failed: %w; the command's outcome is unknown: check the sandbox's state before retrying", t.name, err)
	}
	out.Stdout, out.StdoutTruncated, out.StdoutBytes = stdout.text(), stdout.truncated(), stdout.total
	out.Stderr, out.StderrTruncated, out.StderrBytes = stderr.text(), stderr.truncated(), stderr.total
	return out, nil
}

// run runs command in the sandbox and returns its exit status: through the
// sandbox's warm shell when it can (no stdin, shell free), else on an exec
// stream of its own. An error is a failure to run, never an exit status.
func (s *Server) run(ctx, execCtx context.Context, t target, command []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if stdin == nil {
		if sh := s.shell(execCtx, t); sh != nil {
			code, err := sh.Run(execCtx, command, stdout, stderr)
			var broken *sandbox.ShellBrokenError
			switch {
			case err == nil:
				return code, nil
			case errors.As(err, &broken) && broken.Sent:
				return 0, broken
			case errors.As(err, &broken), errors.Is(err, sandbox.ErrShellBusy):
				// It never reached the sandbox: stream it instead.
			default:
				return 0, err // ctx ended
			}
		}
	}
	if err := s.scope.confirm(execCtx, t); err != nil {
		return 0, err
	}
	err := t.run.Stream(execCtx, command, sandbox.Streams{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if code, ok := sandbox.ExitCode(err); ok {
		return code, nil
	}
	return 0, err
}

// execCommand builds the argv of an exec call: the agent's command or
// shell line, with env(1) and a working directory as exec does.
func (s *Server) execCommand(in ExecInput) ([]string, error) {
	var command []string
	switch {
	case len(in.Command) > 0 && in.Shell != "":
		return nil, errors.New("give either command (an argv) or shell (a sh -c line), not both")
	case len(in.Command) > 0:
		command = in.Command
	case in.Shell != "":
		command = []string{"sh", "-c", in.Shell}
	default:
		return nil, errors.New(`nothing to run: give command (e.g. ["ls", "-la"]) or shell (e.g. "ls -la | head")`)
	}
	for _, a := range command {
		if strings.ContainsRune(a, 0) {
			return nil, errors.New("the command contains a NUL byte, which no argument can hold")
		}
	}
	keys := make([]string, 0, len(in.Env))
	for k := range in.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		if err := sandbox.ValidateEnvName(k); err != nil {
			return nil, err
		}
		env = append(env, k+"="+in.Env[k])
	}
	workdir := ""
	if in.Workdir != "" {
		var err error
		if workdir, err = transfer.CleanRemotePath(in.Workdir); err != nil {
			return nil, fmt.Errorf("workdir: %v", err)
		}
		workdir = strings.TrimSuffix(workdir, "/")
		if workdir == "" {
			workdir = "/"
		}
	}
	return sandbox.ExecCommand(command, env, workdir), nil
}
