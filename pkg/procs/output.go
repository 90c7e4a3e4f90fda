package procs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// Offsets are positions in a process's stdout and stderr, in bytes from
// their start: where to read from, or where a read ended.
type Offsets struct {
	Stdout, Stderr int64
}

// Chunk is output of a process.
type Chunk struct {
	Stderr bool
	Data   []byte
	// Next is where output continues after this chunk.
	Next Offsets
}

// Follow calls fn with the output of the process sel names, from
// offsets from, as it comes, until the process has ended and its output
// is all read; then it returns how it ended. A process whose supervisor
// is gone (killed in the sandbox) returns State Lost. An error of fn ends
// the stream with it; so does ctx (the process runs on).
func (p *Procs) Follow(ctx context.Context, sel Selector, from Offsets, fn func(Chunk) error) (State, Exit, error) {
	return p.read(ctx, sel, from, "follow", fn)
}

// Output is what a process has written so far.
type Output struct {
	Stdout, Stderr []byte
	// Next is where the next read continues.
	Next  Offsets
	State State
	Exit  Exit // when State is Exited
	// More: there was more output than max; read again from Next.
	More bool
}

// Read returns what the process sel names has written since from, at
// most max bytes of each stream (max <= 0: 1 MiB), and whether it runs.
func (p *Procs) Read(ctx context.Context, sel Selector, from Offsets, max int) (*Output, error) {
	return p.collect(ctx, sel, from, max, 0)
}

// ReadWait is Read that waits, up to wait, for more: it returns once the
// process has ended and its output is read, once max bytes of a stream have
// come, or once wait is over (the process runs on).
func (p *Procs) ReadWait(ctx context.Context, sel Selector, from Offsets, max int, wait time.Duration) (*Output, error) {
	return p.collect(ctx, sel, from, max, wait)
}

func (p *Procs) collect(ctx context.Context, sel Selector, from Offsets, max int, wait time.Duration) (*Output, error) {
	if max <= 0 {
		max = 1 << 20
	}
	o := &Output{Next: from, State: Running}
	full := errors.New("full")
	mode, readCtx := "once", ctx
	if wait > 0 {
		var cancel context.CancelFunc
		readCtx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
		mode = "follow"
	}
	st, ex, err := p.read(readCtx, sel, from, mode, func(c Chunk) error {
		dst, at := &o.Stdout, &o.Next.Stdout
		if c.Stderr {
			dst, at = &o.Stderr, &o.Next.Stderr
		}
		data := c.Data
		if room := max - len(*dst); len(data) > room {
			data = data[:room]
			o.More = true
		}
		*dst = append(*dst, data...)
		*at += int64(len(data))
		// Waiting on with a full stream would only wait: answer.
		if o.More || (wait > 0 && len(*dst) >= max) {
			return full
		}
		return nil
	})
	switch {
	case errors.Is(err, full):
		return o, nil
	case err != nil && wait > 0 && ctx.Err() == nil && readCtx.Err() != nil:
		return o, nil // waited enough: it runs on
	case err != nil:
		return nil, err
	}
	o.State, o.Exit = st, ex
	return o, nil
}

// read runs the output script in mode ("follow" or "once") and parses its
// frames as they come.
func (p *Procs) read(ctx context.Context, sel Selector, from Offsets, mode string, fn func(Chunk) error) (State, Exit, error) {
	arg, err := sel.arg()
	if err != nil {
		return 0, Exit{}, err
	}
	if from.Stdout < 0 || from.Stderr < 0 {
		return 0, Exit{}, errors.New("an output offset cannot be negative")
	}
	r := p.stream(ctx, p.command(outputScript, arg, strconv.FormatInt(from.Stdout, 10), strconv.FormatInt(from.Stderr, 10), strconv.Itoa(maxFrame), mode), nil, nil, from, fn)
	if r.stopped != nil {
		return 0, Exit{}, r.stopped
	}
	if code, ok := sandbox.ExitCode(r.runErr); ok && code == 44 {
		return 0, Exit{}, fmt.Errorf("%w: %s", ErrNotFound, sel)
	}
	if r.runErr != nil && ctx.Err() == nil {
		return 0, Exit{}, fmt.Errorf("reading the output of %s: %w (%s)", sel, r.runErr, r.stderr)
	}
	if r.err != nil {
		return 0, Exit{}, r.err
	}
	return r.state, r.exit, nil
}

// streamed is how a stream of frames ended.
type streamed struct {
	state State
	exit  Exit
	// stopped is the error of fn or head that ended the stream (the
	// exec was cancelled for it).
	stopped error
	// runErr is the exec's own error, stderr (one sanitised line) what
	// it wrote; err is ctx's or the framing's.
	runErr error
	stderr string
	err    error
}

// stream runs argv in the sandbox with stdin in, lets head read what comes
// before the frames (if not nil), then hands fn the frames of output from
// offsets from, until the end frame (or "R"). An error of fn ends the
// stream with it; so does ctx.
func (p *Procs) stream(ctx context.Context, argv []string, in io.Reader, head func(*frameReader) error, from Offsets, fn func(Chunk) error) streamed {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	var errOut untrusted.Buffer
	errOut.Max = 2048
	done := make(chan error, 1)
	go func() {
		err := p.Exec.Run(ctx, argv, in, pw, &errOut)
		pw.CloseWithError(err)
		done <- err
	}()
	fr := newFrameReader(pr)
	finish := func(r streamed) streamed {
		pr.CloseWithError(errors.New("output read"))
		r.runErr = <-done
		r.stderr = untrusted.Line(errOut.String(), 300)
		if err := ctx.Err(); err != nil && r.stopped == nil {
			r.err = err
		}
		return r
	}
	if head != nil {
		if err := head(fr); err != nil {
			cancel()
			return finish(streamed{stopped: err})
		}
	}
	at := from
	for {
		f, err := fr.next()
		if err != nil {
			return finish(streamed{err: err})
		}
		if f.end {
			return finish(streamed{state: f.state, exit: f.exit})
		}
		if f.running {
			return finish(streamed{state: Running})
		}
		if f.stderr {
			at.Stderr += int64(len(f.data))
		} else {
			at.Stdout += int64(len(f.data))
		}
		if err := fn(Chunk{Stderr: f.stderr, Data: f.data, Next: at}); err != nil {
			cancel()
			return finish(streamed{stopped: err})
		}
	}
}

// frame is one frame of the output script.
type frame struct {
	stderr  bool
	data    []byte
	end     bool // "X": the process ended (state, exit)
	running bool // "R": a once-read found it running
	state   State
	exit    Exit
}

type frameReader struct{ br *bufio.Reader }

func newFrameReader(r io.Reader) *frameReader { return &frameReader{bufio.NewReaderSize(r, 64<<10)} }

// next reads one frame: "O N" or "E N" and N bytes, "X EXIT SIGNAL", or
// "R". The sandbox wrote them: a frame longer than maxFrame, or one that
// does not parse, is an error.
func (r *frameReader) next() (frame, error) {
	line, err := readLine(r.br, 64)
	if err != nil {
		if err == io.EOF && line == "" {
			return frame{}, io.EOF
		}
		if err != io.EOF {
			return frame{}, err
		}
	}
	bad := fmt.Errorf("the sandbox broke the output's framing: %q", untrusted.Line(line, 64))
	f := strings.Fields(line)
	switch {
	case len(f) == 2 && (f[0] == "O" || f[0] == "E"):
		n, ok := number(f[1])
		if !ok || n <= 0 || n > maxFrame {
			return frame{}, bad
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r.br, data); err != nil {
			return frame{}, fmt.Errorf("the sandbox's output ended inside a frame: %w", err)
		}
		return frame{stderr: f[0] == "E", data: data}, nil
	case len(f) == 3 && f[0] == "X":
		code, ok1 := number(f[1])
		sig, ok2 := number(f[2])
		if !ok1 || !ok2 || code > 255 {
			return frame{}, bad
		}
		if code < 0 {
			return frame{end: true, state: Lost}, nil
		}
		return frame{end: true, state: Exited, exit: exitOf(code, sig)}, nil
	case len(f) == 1 && f[0] == "R":
		return frame{running: true}, nil
	}
	return frame{}, bad
}
