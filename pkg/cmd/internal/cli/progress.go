package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	dockerterm "github.com/moby/term"
	"github.com/schollz/progressbar/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/util/term"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// Progress tells, on stderr, what a long command is doing. On a terminal
// it keeps one status line, redrawn in place by schollz/progressbar (a
// spinner, the elapsed time, and bytes and rate for copies); anywhere else
// it writes plain lines only. Quiet silences everything but warnings.
type Progress struct {
	mu    sync.Mutex
	out   io.Writer
	live  bool
	quiet bool
	width int

	bar  *progressbar.ProgressBar // the status line; nil when none is shown
	tick chan struct{}            // closed to stop the spinner's redraws
}

// copyBarDelay: copies shorter than this show no bytes and rate at all.
const copyBarDelay = time.Second

func NewProgress(errOut io.Writer, quiet bool) *Progress {
	p := &Progress{out: errOut, quiet: quiet, width: 80}
	if errOut == nil {
		p.out, p.quiet = io.Discard, true
	}
	if !p.quiet && term.IsTerminal(errOut) {
		p.live = true
		if f, ok := errOut.(*os.File); ok {
			if ws, err := dockerterm.GetWinsize(f.Fd()); err == nil && ws.Width > 20 {
				p.width = int(ws.Width)
			}
		}
	}
	return p
}

// Linef prints a line of its own (not with -q), above the status line.
func (p *Progress) Linef(format string, args ...any) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.printLocked(fmt.Sprintf(format, args...))
}

func (p *Progress) printLocked(line string) {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	fmt.Fprintln(p.out, line)
	if p.bar != nil {
		_ = p.bar.RenderBlank()
	}
}

// Warn is where warnings go: they are printed even with -q.
func (p *Progress) Warn() io.Writer { return warnWriter{p} }

type warnWriter struct{ p *Progress }

func (w warnWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.printLocked(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// Status shows text on the status line; it does nothing off a terminal.
func (p *Progress) Status(text string) {
	if !p.live {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.showLocked(text, false)
}

func (p *Progress) showLocked(text string, bytes bool) {
	if max := p.width - 30; len(text) > max {
		text = text[:max-1] + "…"
	}
	if p.bar != nil {
		p.bar.Describe(text)
		return
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(p.out),
		progressbar.OptionSetDescription(text),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetSpinnerChangeInterval(0), // redrawn by our ticker, under our lock
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(80 * time.Millisecond),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionUseIECUnits(true))
	}
	p.bar = progressbar.NewOptions64(-1, opts...)
	_ = p.bar.RenderBlank()
	p.tick = make(chan struct{})
	go p.spin(p.bar, p.tick)
}

// spin redraws the spinner (and the elapsed time) while the line is shown.
func (p *Progress) spin(bar *progressbar.ProgressBar, stop chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.bar == bar {
				_ = bar.RenderBlank()
			}
			p.mu.Unlock()
		}
	}
}

// Done removes the status line.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneLocked()
}

func (p *Progress) doneLocked() {
	if p.bar == nil {
		return
	}
	close(p.tick)
	_ = p.bar.Finish()
	_ = p.bar.Clear()
	p.bar = nil
}

// CopyMeter counts the bytes of one copy; past copyBarDelay, on a
// terminal, they show on the status line with their rate.
type CopyMeter struct {
	p     *Progress
	label string
	start time.Time
	n     int64
	shown bool
}

// Copy returns r counting what goes through it, and the meter.
func (p *Progress) Copy(label string, r sandbox.Runner) (sandbox.Runner, *CopyMeter) {
	m := &CopyMeter{p: p, label: label, start: time.Now()}
	return countingRunner{r, m}, m
}

func (m *CopyMeter) add(n int) {
	if n <= 0 {
		return
	}
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	m.n += int64(n)
	if !m.p.live {
		return
	}
	if !m.shown && time.Since(m.start) >= copyBarDelay {
		m.shown = true
		m.p.doneLocked()
		m.p.showLocked(m.label, true)
		_ = m.p.bar.Add64(m.n)
		return
	}
	if m.shown && m.p.bar != nil {
		_ = m.p.bar.Add64(int64(n))
	}
}

// Done ends the meter's status line and sums the copy up.
func (m *CopyMeter) Done() (bytes int64, took time.Duration) {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	m.p.doneLocked()
	return m.n, time.Since(m.start)
}

// countingRunner passes a copy's streams through a meter. The stream that
// carries the tar data is stdin going in, stdout coming out.
type countingRunner struct {
	sandbox.Runner
	m *CopyMeter
}

func (r countingRunner) Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if stdin != nil {
		stdin = countingReader{stdin, r.m}
	}
	if stdout != nil && stdout != io.Discard {
		stdout = countingWriter{stdout, r.m}
	}
	return r.Runner.Run(ctx, command, stdin, stdout, stderr)
}

type countingReader struct {
	r io.Reader
	m *CopyMeter
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.m.add(n)
	return n, err
}

type countingWriter struct {
	w io.Writer
	m *CopyMeter
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.m.add(n)
	return n, err
}

// WaitStatus follows a sandbox being created for the status line: the
// states Create reports (Describe) and, on a terminal, the Pod's events as
// they happen (Scheduled, Pulling image ..., Started). Off a terminal it
// prints the states worth a line of their own: those that carry the
// cluster's reason (an image pull being retried, Unschedulable). stop ends
// the event watch.
func (p *Progress) WaitStatus(ctx context.Context, cs kubernetes.Interface, namespace, name string) (report func(state string), stop func()) {
	label := "sandbox/" + name
	// The line shows the Pod's state and its latest event side by side:
	// "Pending · Successfully assigned ns/pod to node".
	var mu sync.Mutex
	state, event := "creating", ""
	show := func() {
		mu.Lock()
		text := label + ": " + state
		if event != "" {
			text += " · " + event
		}
		mu.Unlock()
		p.Status(text)
	}
	report = func(s string) {
		if p.live {
			mu.Lock()
			state = untrusted.Printable(s)
			mu.Unlock()
			show()
			return
		}
		if strings.Contains(s, ": ") && !strings.HasPrefix(s, "SchedulingGated") {
			p.Linef("waiting for %s: %s", label, untrusted.Printable(s))
		}
	}
	if !p.live {
		return report, func() {}
	}
	show()
	ctx, cancel := context.WithCancel(ctx)
	// Watching before the Pod exists: its first events come fast.
	w := watchEvents(ctx, cs, namespace, sandbox.PodName(name))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if w == nil {
			return
		}
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				e, isEvent := ev.Object.(*corev1.Event)
				if !isEvent || (ev.Type != watch.Added && ev.Type != watch.Modified) {
					continue
				}
				msg := e.Reason
				if e.Message != "" {
					msg = e.Message
				}
				if e.Type == corev1.EventTypeWarning {
					msg = e.Reason + ": " + msg
				}
				mu.Lock()
				event = untrusted.Printable(msg)
				mu.Unlock()
				show()
			}
		}
	}()
	return report, func() {
		cancel()
		<-done
		p.Done()
	}
}

// watchEvents watches the events about the named Pod from now on, or
// returns nil: a client that may not list or watch events just gets a
// status line made of the Pod's states alone.
func watchEvents(ctx context.Context, cs kubernetes.Interface, namespace, podName string) watch.Interface {
	sel := fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": podName}.AsSelector().String()
	events := cs.CoreV1().Events(namespace)
	// Events of an earlier Pod of that name are history: watch from now.
	list, err := events.List(ctx, metav1.ListOptions{FieldSelector: sel, Limit: 1})
	if err != nil {
		return nil
	}
	w, err := events.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
	if err != nil {
		return nil
	}
	return w
}
