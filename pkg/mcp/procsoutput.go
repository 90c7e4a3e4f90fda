package mcp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/procs"
)

// ProcessOutputInput is the slice of a process's output to read.
type ProcessOutputInput struct {
	Sandbox      string `json:"sandbox" jsonschema:"name of the sandbox"`
	PID          int    `json:"pid,omitempty" jsonschema:"the process's pid, as start_process returned it"`
	Tag          string `json:"tag,omitempty" jsonschema:"the tag given to start_process, instead of pid (the running process of that tag wins)"`
	StdoutOffset int64  `json:"stdout_offset,omitempty" jsonschema:"first byte of stdout to read (default 0): the last answer's next_stdout_offset"`
	StderrOffset int64  `json:"stderr_offset,omitempty" jsonschema:"first byte of stderr to read (default 0): the last answer's next_stderr_offset"`
	MaxBytes     int    `json:"max_bytes,omitempty" jsonschema:"read at most this many bytes of each stream (default and most: the server's output limit)"`
	Encoding     string `json:"encoding,omitempty" jsonschema:"text (default: control characters and invalid UTF-8 become '?') or base64 (the exact bytes)"`
	WaitSeconds  int    `json:"wait_seconds,omitempty" jsonschema:"collect output for up to this many seconds, answering as soon as the process ends or max_bytes arrive (default 0: answer at once)"`
}

// ProcessOutputOutput is what a process wrote since the offsets, and how
// it is. Its output is untrusted: bounded, and cleaned in text encoding.
type ProcessOutputOutput struct {
	State            string `json:"state" jsonschema:"running, exited, or lost (gone without an exit code)"`
	Exit             *Exit  `json:"exit,omitempty" jsonschema:"how it ended, once it has and its output is all written"`
	Encoding         string `json:"encoding"`
	Stdout           string `json:"stdout"`
	Stderr           string `json:"stderr"`
	StdoutBytes      int    `json:"stdout_bytes" jsonschema:"bytes of stdout this answer covers"`
	StderrBytes      int    `json:"stderr_bytes" jsonschema:"bytes of stderr this answer covers"`
	NextStdoutOffset int64  `json:"next_stdout_offset" jsonschema:"where stdout goes on: stdout_offset of the next call"`
	NextStderrOffset int64  `json:"next_stderr_offset" jsonschema:"where stderr goes on: stderr_offset of the next call"`
	More             bool   `json:"more" jsonschema:"more output was there than max_bytes: read again from the next offsets"`
	Altered          bool   `json:"altered,omitempty" jsonschema:"text encoding replaced bytes that were not printable UTF-8; read with encoding base64 for the exact bytes"`
	Resumed          string `json:"resumed,omitempty" jsonschema:"the sandbox was suspended and this call resumed it first (its processes ended with its Pod)"`
}

func (s *Server) processOutput(ctx context.Context, in ProcessOutputInput) (ProcessOutputOutput, error) {
	sel, err := selector(in.PID, in.Tag)
	if err != nil {
		return ProcessOutputOutput{}, err
	}
	if in.StdoutOffset < 0 || in.StderrOffset < 0 {
		return ProcessOutputOutput{}, errors.New("stdout_offset and stderr_offset must not be negative")
	}
	encoding, limit, err := s.readArgs(in.Encoding, in.MaxBytes)
	if err != nil {
		return ProcessOutputOutput{}, err
	}
	wait := time.Duration(in.WaitSeconds) * time.Second
	if in.WaitSeconds < 0 || wait > s.o.Limits.ExecTimeout {
		return ProcessOutputOutput{}, fmt.Errorf("wait_seconds must be between 0 and %d (the server's exec timeout)", int(s.o.Limits.ExecTimeout.Seconds()))
	}
	t, resumed, err := s.ready(ctx, in.Sandbox, true)
	if err != nil {
		return ProcessOutputOutput{}, err
	}
	p := newProcs(t.run)
	from := procs.Offsets{Stdout: in.StdoutOffset, Stderr: in.StderrOffset}
	o, err := p.ReadWait(ctx, sel, from, limit, wait)
	if err != nil {
		return ProcessOutputOutput{}, s.processError(ctx, t, resumed, sel, err)
	}
	out := ProcessOutputOutput{State: o.State.String(), Exit: exitOf(o.State, o.Exit), Encoding: encoding, More: o.More, Resumed: resumed}
	// Output that may go on can end inside a character: the next read
	// starts at it rather than show half of it as '?'.
	goesOn := o.More || o.State == procs.Running
	var alteredOut, alteredErr bool
	out.Stdout, out.StdoutBytes, alteredOut = streamText(o.Stdout, encoding, goesOn)
	out.Stderr, out.StderrBytes, alteredErr = streamText(o.Stderr, encoding, goesOn)
	out.Altered = alteredOut || alteredErr
	out.NextStdoutOffset = in.StdoutOffset + int64(out.StdoutBytes)
	out.NextStderrOffset = in.StderrOffset + int64(out.StderrBytes)
	return out, nil
}

// streamText is b as an agent reads it, the bytes of b it covers, and
// whether text encoding replaced any.
func streamText(b []byte, encoding string, goesOn bool) (string, int, bool) {
	if encoding == encodingBase64 {
		return base64.StdEncoding.EncodeToString(b), len(b), false
	}
	if goesOn {
		if cut := trimPartialRune(b); len(cut) > 0 {
			b = cut
		}
		if n := len(b); n > 1 && b[n-1] == '\r' {
			b = b[:n-1] // the first half of a CRLF, perhaps
		}
	}
	return cleanText(b), len(b), !isCleanText(b)
}
