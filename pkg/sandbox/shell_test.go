package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
)

// streamer turns a Runner into a Streamer. Like an API server's exec, and
// unlike os/exec with a stdin that is not a file, the stream ends when the
// command does, whether or not its stdin has more to say.
//
// wrap, if set, goes before the command: pidNamespace.
type streamer struct {
	r    Runner
	wrap []string
}

func (s streamer) Stream(ctx context.Context, command []string, st Streams) error {
	command = append(append([]string(nil), s.wrap...), command...)
	if st.Stdin == nil {
		return s.r.Run(ctx, command, nil, st.Stdout, st.Stderr)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(w, st.Stdin)
		_ = w.Close()
	}()
	defer r.Close()
	return s.r.Run(ctx, command, r, st.Stdout, st.Stderr)
}

func shells(t *testing.T) map[string]Streamer {
	out := map[string]Streamer{}
	wrap := pidNamespace(t)
	for name, r := range fileRunners(t) {
		out[name] = streamer{r, wrap}
	}
	return out
}

func pidNamespace(t *testing.T) []string { return testexec.PidNamespace(t) }

func pidNamespaceWith(t *testing.T, prelude string) []string {
	return testexec.PidNamespaceWith(t, prelude)
}

func startShell(t *testing.T, s Streamer) *Shell {
	t.Helper()
	sh, err := StartShell(context.Background(), context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sh.Close)
	return sh
}

func run(t *testing.T, sh *Shell, command ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code, err := sh.Run(context.Background(), command, &out, &errOut)
	if err != nil {
		t.Fatalf("Run(%q): %v", command, err)
	}
	return code, out.String(), errOut.String()
}

func TestShellRunsCommandsOneAfterAnother(t *testing.T) {
	for name, s := range shells(t) {
		t.Run(name, func(t *testing.T) {
			sh := startShell(t, s)
			for _, c := range []struct {
				command        []string
				code           int
				stdout, stderr string
			}{
				{[]string{"echo", "hello"}, 0, "hello\n", ""},
				{[]string{"printf", "%s|", "it's", "a b", "x\ny", "$(touch /tmp/pwned)", "`id`", "\xff\xfe", "", "\\"}, 0, "it's|a b|x\ny|$(touch /tmp/pwned)|`id`|\xff\xfe||\\|", ""},
				{[]string{"sh", "-c", "printf out; printf err >&2; exit 3"}, 3, "out", "err"},
				{[]string{"true"}, 0, "", ""},
				{[]string{"sh", "-c", "printf '\\n\\n'"}, 0, "\n\n", ""},
				{[]string{"cat"}, 0, "", ""}, // no stdin: EOF at once
			} {
				code, stdout, stderr := run(t, sh, c.command...)
				if code != c.code || stdout != c.stdout || stderr != c.stderr {
					t.Errorf("%q: %d %q %q; want %d %q %q", c.command, code, stdout, stderr, c.code, c.stdout, c.stderr)
				}
			}
			if code, _, _ := run(t, sh, "sh", "-c", "kill -TERM $$"); code != 143 {
				t.Errorf("killed by SIGTERM: exit %d, want 143", code)
			}
			// Builtins are not in the way: cd and exit are not programs.
			if code, _, stderr := run(t, sh, "exit", "4"); code != 127 || !strings.Contains(stderr, "exit") {
				t.Errorf("exit: %d %q", code, stderr)
			}
			// A lot of output, in many writes.
			code, stdout, _ := run(t, sh, "sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done")
			if code != 0 || strings.Count(stdout, "\n") != 20000 || !strings.HasSuffix(stdout, "line 19999\n") {
				t.Errorf("long output: %d, %d lines", code, strings.Count(stdout, "\n"))
			}
			if alive, idle := sh.Alive(); !alive || idle > time.Minute {
				t.Errorf("Alive = %v, %v", alive, idle)
			}
		})
	}
}

func TestShellIsOneCommandAtATime(t *testing.T) {
	sh := startShell(t, streamer{r: &hostRunner{}, wrap: pidNamespace(t)})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		close(started)
		run(t, sh, "sleep", "1")
	}()
	<-started
	time.Sleep(200 * time.Millisecond)
	if _, err := sh.Run(context.Background(), []string{"true"}, io.Discard, io.Discard); !errors.Is(err, ErrShellBusy) {
		t.Errorf("a second command: %v, want ErrShellBusy", err)
	}
	wg.Wait()
	run(t, sh, "true")
}

func TestShellCancelClosesIt(t *testing.T) {
	sh := startShell(t, streamer{r: &hostRunner{}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	if _, err := sh.Run(ctx, []string{"sh", "-c", "echo started; exec sleep 30"}, &out, io.Discard); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v", err)
	}
	eventuallyTrue(t, func() bool { alive, _ := sh.Alive(); return !alive })
	var broken *ShellBrokenError
	if _, err := sh.Run(context.Background(), []string{"true"}, io.Discard, io.Discard); !errors.As(err, &broken) || broken.Sent {
		t.Fatalf("Run on a closed shell: %v", err)
	}
}

func eventuallyTrue(t *testing.T, cond func() bool) {
	t.Helper()
	for range 300 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 3s")
}

// hostileShell is a sandbox whose sh was replaced: it answers the ready
// line, then whatever answer says for each command line it reads.
type hostileShell struct {
	answer func(token string, stdout, stderr io.Writer)
}

func (h hostileShell) Stream(ctx context.Context, command []string, s Streams) error {
	fmt.Fprintf(s.Stdout, "AK-READY %s\n", command[len(command)-1])
	lines := bufio.NewScanner(s.Stdin)
	for lines.Scan() {
		token, _, _ := strings.Cut(lines.Text(), " ")
		h.answer(token, s.Stdout, s.Stderr)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.New("stream ended")
}

func TestShellAgainstAHostileSandbox(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]struct {
		answer func(token string, stdout, stderr io.Writer)
		check  func(t *testing.T, code int, stdout string, err error)
	}{
		"malformed status": {
			func(tok string, o, e io.Writer) { fmt.Fprintf(o, "\n%s 12ab\n", tok); fmt.Fprintf(e, "\n%s\n", tok) },
			func(t *testing.T, _ int, _ string, err error) {
				var b *ShellBrokenError
				if !errors.As(err, &b) || !b.Sent {
					t.Errorf("err %v", err)
				}
			},
		},
		"endless status": {
			func(tok string, o, e io.Writer) {
				fmt.Fprintf(o, "\n%s ", tok)
				for range 1000 {
					_, _ = o.Write([]byte("1111111111"))
				}
			},
			func(t *testing.T, _ int, _ string, err error) {
				if err == nil || !strings.Contains(err.Error(), "malformed exit status") {
					t.Errorf("err %v", err)
				}
			},
		},
		"marker one byte at a time, after a fake one": {
			func(tok string, o, e io.Writer) {
				fmt.Fprintf(o, "data\nAK-END-0000 1\n")
				for _, b := range []byte("\n" + tok + " 7\ntrailing garbage") {
					_, _ = o.Write([]byte{b})
				}
				fmt.Fprintf(e, "\n%s\n", tok)
			},
			func(t *testing.T, code int, stdout string, err error) {
				if err != nil || code != 7 || stdout != "data\nAK-END-0000 1\n" {
					t.Errorf("%d %q %v", code, stdout, err)
				}
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			sh, err := StartShell(ctx, ctx, hostileShell{c.answer})
			if err != nil {
				t.Fatal(err)
			}
			defer sh.Close()
			var out bytes.Buffer
			code, err := sh.Run(ctx, []string{"anything"}, &out, io.Discard)
			c.check(t, code, out.String(), err)
		})
	}
	// Silence: the caller's context ends the wait.
	sh, err := StartShell(ctx, ctx, hostileShell{func(string, io.Writer, io.Writer) {}})
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := sh.Run(tctx, []string{"x"}, io.Discard, io.Discard); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent sandbox: %v", err)
	}
}

func TestStartShellFails(t *testing.T) {
	ctx := context.Background()
	var broken *ShellBrokenError
	noSh := streamerFunc(func(context.Context, []string, Streams) error {
		return errors.New(`exec: "sh": executable file not found`)
	})
	if _, err := StartShell(ctx, ctx, noSh); !errors.As(err, &broken) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("no sh: %v", err)
	}
	// A sandbox that never says it is ready.
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := StartShell(tctx, ctx, streamerFunc(func(ctx context.Context, _ []string, _ Streams) error { <-ctx.Done(); return ctx.Err() })); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent start: %v", err)
	}
}

type streamerFunc func(ctx context.Context, command []string, s Streams) error

func (f streamerFunc) Stream(ctx context.Context, command []string, s Streams) error {
	return f(ctx, command, s)
}

// The demultiplexer finds its marker however the stream is cut, and passes
// everything before it, unchanged.
func FuzzShellDemux(f *testing.F) {
	f.Add([]byte("hello\n"), uint8(3), 42)
	f.Add([]byte(""), uint8(1), 0)
	f.Add([]byte("\nAK-END-x 1\n\n"), uint8(2), 255)
	f.Fuzz(func(t *testing.T, content []byte, chunk uint8, code int) {
		if code < 0 {
			code = -code
		}
		code %= 256
		end := "AK-END-0123456789abcdef0123456789abcdef"
		if bytes.Contains(content, []byte(end)) {
			return
		}
		stream := append(append([]byte(nil), content...), []byte(fmt.Sprintf("\n%s %d\nafter", end, code))...)
		var sink bytes.Buffer
		d := &demux{}
		done := d.expect([]byte("\n"+end+" "), true, &sink)
		size := int(chunk)%17 + 1
		for len(stream) > 0 {
			n := min(size, len(stream))
			_, _ = d.Write(stream[:n])
			stream = stream[n:]
		}
		select {
		case r := <-done:
			if r.err != nil || r.code != code || !bytes.Equal(sink.Bytes(), content) {
				t.Fatalf("got %d %q %v; want %d %q", r.code, sink.Bytes(), r.err, code, content)
			}
		default:
			t.Fatal("the marker was not found")
		}
	})
}

func TestQuoteWordsRefusesNUL(t *testing.T) {
	if _, err := quoteWords([]string{"a\x00b"}); err == nil {
		t.Fatal("a NUL byte was accepted")
	}
}
