package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

type echoRunner struct{}

// Run copies stdin to stdout, as a sandbox's tar would pass data along.
func (echoRunner) Run(_ context.Context, _ []string, stdin io.Reader, stdout, _ io.Writer) error {
	if stdin != nil && stdout != nil {
		_, err := io.Copy(stdout, stdin)
		return err
	}
	return nil
}

func TestProgressOffATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf, false)
	if p.live {
		t.Fatal("a buffer is not a terminal")
	}
	p.Linef("creating %s", "sandbox/x")
	p.Status("not shown off a terminal")
	r, meter := p.Copy("copying", echoRunner{})
	var out bytes.Buffer
	if err := r.Run(context.Background(), nil, strings.NewReader("12345"), &out, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := meter.Done(); n != 10 { // in through stdin, out through stdout
		t.Fatalf("counted %d bytes", n)
	}
	_, _ = p.Warn().Write([]byte("warning: skipping symlink\n"))
	if got := buf.String(); got != "creating sandbox/x\nwarning: skipping symlink\n" {
		t.Fatalf("stderr %q", got)
	}

	buf.Reset()
	q := NewProgress(&buf, true)
	q.Linef("not with -q")
	_, _ = q.Warn().Write([]byte("warning: still shown\n"))
	if got := buf.String(); got != "warning: still shown\n" {
		t.Fatalf("quiet stderr %q", got)
	}
}

// On a real terminal the status line is drawn in place and cleared; a line
// printed meanwhile goes above it; a copy over a second shows bytes.
func TestProgressOnATerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		_, _ = io.Copy(&screen, ptmx)
		close(read)
	}()
	p := NewProgress(tty, false)
	if !p.live {
		t.Fatal("a pty is a terminal")
	}
	p.Status("sandbox/x: Pulling image")
	time.Sleep(250 * time.Millisecond) // a few spinner frames
	p.Linef("a line of its own")
	p.Done()
	r, meter := p.Copy("copying big", echoRunner{})
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 15; i++ {
			_, _ = pw.Write(bytes.Repeat([]byte("x"), 64<<10))
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	if err := r.Run(context.Background(), nil, pr, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	if n, took := meter.Done(); n != 15*64<<10 || took < time.Second {
		t.Fatalf("%d bytes in %s", n, took)
	}
	tty.Close()
	<-read
	got := screen.String()
	for _, want := range []string{"sandbox/x: Pulling image", "a line of its own", "copying big", "KiB", "\x1b[2K"} {
		if !strings.Contains(got, want) {
			t.Errorf("the terminal did not show %q:\n%q", want, got)
		}
	}
}
