package procs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// Start starts spec in the sandbox and returns once it runs, with its PID.
// The process outlives ctx and the exec: only Signal ends it.
func (p *Procs) Start(ctx context.Context, spec Spec) (*Process, error) {
	script, err := specScript(spec)
	if err != nil {
		return nil, err
	}
	var out, errOut untrusted.Buffer
	out.Max, errOut.Max = 256, 2048
	err = p.Exec.Run(ctx, p.command(startScript, strconv.FormatInt(p.outputCap(), 10), strconv.Itoa(p.keep())),
		strings.NewReader(script), &out, &errOut)
	if err := startError(err, untrusted.Line(errOut.String(), 300), spec.Cwd); err != nil {
		return nil, err
	}
	pid, id, err := parseStarted(out.String())
	if err != nil {
		return nil, err
	}
	return &Process{PID: pid, ID: id, Spec: spec, State: Running}, nil
}

// StartFollow starts spec and follows its output in the same exec: one
// exec where Start and Follow take two, which is what a client that runs a
// command and waits for it (envd's Start) wants. started is called with the
// process once it runs, then fn with its output as it comes; once the
// process has ended and its output is all read, StartFollow returns how it
// ended. ctx, or an error of started or fn, ends the stream, not the
// process (Follow reaches it again).
func (p *Procs) StartFollow(ctx context.Context, spec Spec, started func(*Process) error, fn func(Chunk) error) (State, Exit, error) {
	script, err := specScript(spec)
	if err != nil {
		return 0, Exit{}, err
	}
	var proc *Process
	head := func(fr *frameReader) error {
		line, err := readLine(fr.br, 256)
		if err != nil {
			return err
		}
		pid, id, err := parseStarted(line)
		if err != nil {
			return err
		}
		proc = &Process{PID: pid, ID: id, Spec: spec, State: Running}
		return started(proc)
	}
	argv := p.command(startFollowScript, strconv.FormatInt(p.outputCap(), 10), strconv.Itoa(p.keep()), strconv.Itoa(maxFrame))
	r := p.stream(ctx, argv, strings.NewReader(script), head, Offsets{}, fn)
	if proc == nil {
		// It never said it started: the start script's exit says why.
		if err := startError(r.runErr, r.stderr, spec.Cwd); err != nil && ctx.Err() == nil {
			return 0, Exit{}, err
		}
	}
	switch {
	case r.stopped != nil:
		return 0, Exit{}, r.stopped
	case r.runErr != nil && ctx.Err() == nil:
		return 0, Exit{}, fmt.Errorf("following the output of pid %d: %w (%s)", proc.PID, r.runErr, r.stderr)
	case r.err != nil:
		return 0, Exit{}, r.err
	}
	return r.state, r.exit, nil
}

// startError is what the start script's exit (err) and stderr say, for a
// process to run in cwd.
func startError(err error, stderr, cwd string) error {
	if code, ok := sandbox.ExitCode(err); ok {
		switch code {
		case 4:
			return field.Invalid("cwd", "the working directory %q is not a directory in the sandbox", untrusted.Line(cwd, 200))
		case 5:
			return fmt.Errorf("%w: %s", ErrTooMany, stderr)
		}
		return fmt.Errorf("starting the process in the sandbox failed (exit %d): %s", code, stderr)
	}
	if err != nil {
		return fmt.Errorf("starting the process in the sandbox: %w", err)
	}
	return nil
}

// parseStarted reads the start script's "AKPROC PID ID" line.
func parseStarted(s string) (int, string, error) {
	f := strings.Fields(s)
	if len(f) == 3 && f[0] == "AKPROC" && validID(f[2]) {
		if pid, err := strconv.Atoi(f[1]); err == nil && pid > 0 {
			return pid, f[2], nil
		}
	}
	return 0, "", fmt.Errorf("the sandbox did not say which process it started (it answered %q); the process may be running: list the processes", untrusted.Line(s, 100))
}

// validID: "p." and mktemp's letters, as the start script names them.
func validID(id string) bool {
	rest, ok := strings.CutPrefix(id, "p.")
	if !ok || rest == "" || len(rest) > 64 {
		return false
	}
	for _, r := range rest {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func (p *Procs) command(script string, args ...string) []string {
	dir, out := p.Dir, p.OutputDir
	if dir == "" {
		dir = Dir
	}
	if out == "" {
		out = OutputDir
	}
	return append([]string{"sh", "-c", script, "agentkernel-procs", dir, out}, args...)
}

func (p *Procs) outputCap() int64 {
	if p.OutputCap > 0 {
		return p.OutputCap
	}
	return DefaultOutputCap
}

func (p *Procs) keep() int {
	if p.Keep > 0 {
		return p.Keep
	}
	return DefaultKeep
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkTag(tag string) error {
	if len(tag) > 256 || !utf8.ValidString(tag) || strings.ContainsFunc(tag, func(r rune) bool { return unicode.IsControl(r) }) {
		return field.Invalid("tag", "a tag is at most 256 bytes of printable UTF-8 on one line")
	}
	return nil
}

// specScript is the sh fragment the start script sources: the spec, with
// every word single-quoted, so that nothing in it is ever run as code.
func specScript(s Spec) (string, error) {
	if s.Cmd == "" {
		return "", field.Invalid("cmd", "a process needs a program to run")
	}
	words := append([]string{s.Cmd, s.Fallback, s.Cwd, s.Tag}, s.Args...)
	for k, v := range s.Env {
		if !envName.MatchString(k) {
			return "", field.Invalid("env", "%q is not an environment variable name (letters, digits and _, not starting with a digit)", untrusted.Line(k, 100))
		}
		words = append(words, v)
	}
	for _, w := range words {
		if strings.IndexByte(w, 0) >= 0 {
			return "", field.Invalid("args", "the program, its arguments, environment and working directory cannot hold a NUL byte")
		}
	}
	if err := checkTag(s.Tag); err != nil {
		return "", err
	}
	config, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	if len(config) > maxConfig {
		return "", field.Error{Field: "env", Asked: fmt.Sprintf("%d bytes of program, arguments and environment", len(config)), Ceiling: strconv.Itoa(maxConfig)}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "ak_config=%s\nak_tag=%s\nak_cwd=%s\nak_stdin=%d\n", quote(string(config)), quote(s.Tag), quote(s.Cwd), b2i(s.Stdin))
	b.WriteString("ak_run() {\n")
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\texport %s=%s\n", k, quote(s.Env[k]))
	}
	if s.Cwd != "" {
		fmt.Fprintf(&b, "\tcd -- %s || exit 1\n", quote(s.Cwd))
	}
	fmt.Fprintf(&b, "\tak_cmd=%s\n", quote(s.Cmd))
	if s.Fallback != "" {
		fmt.Fprintf(&b, "\tcommand -v \"$ak_cmd\" >/dev/null 2>&1 || ak_cmd=%s\n", quote(s.Fallback))
	}
	// A missing program is 127 with sh's words, whether setsid runs it or not.
	b.WriteString("\tcommand -v \"$ak_cmd\" >/dev/null 2>&1 || { echo \"sh: $ak_cmd: not found\" >&2; exit 127; }\n")
	b.WriteString("\texec $ak_setsid ${ak_setsid:+--} \"$ak_cmd\"")
	for _, a := range s.Args {
		b.WriteByte(' ')
		b.WriteString(quote(a))
	}
	b.WriteString("\n}\n")
	return b.String(), nil
}

// quote single-quotes w for sh: inside single quotes every byte but the
// quote itself is literal, newlines included.
func quote(w string) string { return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'" }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
