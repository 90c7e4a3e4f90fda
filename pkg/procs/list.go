package procs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// maxListing bounds what a listing of keep processes reads from the
// sandbox: every process's header and config.
func maxListing(keep int) int64 { return int64(keep)*(maxConfig+256) + 64<<10 }

// List returns every process the sandbox keeps: running ones, and finished
// ones until newer ones push them out.
func (p *Procs) List(ctx context.Context) ([]Process, error) {
	pr, pw := io.Pipe()
	var errOut untrusted.Buffer
	errOut.Max = 2048
	done := make(chan error, 1)
	go func() {
		err := p.Exec.Run(ctx, p.command(listScript, strconv.Itoa(maxConfig)), nil, pw, &errOut)
		pw.CloseWithError(err)
		done <- err
	}()
	procs, perr := parseListing(io.LimitReader(pr, maxListing(p.keep())))
	pr.CloseWithError(errors.New("listing read")) // unblock the exec if we stopped early
	err := <-done
	if err != nil {
		return nil, fmt.Errorf("listing the sandbox's processes: %w (%s)", err, untrusted.Line(errOut.String(), 300))
	}
	if perr != nil {
		return nil, perr
	}
	return procs, nil
}

// Find returns the process sel names: ErrNotFound if there is none. By
// PID, a running process wins over a finished one that had the PID.
func (p *Procs) Find(ctx context.Context, sel Selector) (*Process, error) {
	if _, err := sel.arg(); err != nil {
		return nil, err
	}
	all, err := p.List(ctx)
	if err != nil {
		return nil, err
	}
	var found *Process
	for i := range all {
		q := &all[i]
		if sel.PID > 0 && q.PID != sel.PID || sel.PID <= 0 && q.Spec.Tag != sel.Tag {
			continue
		}
		if found == nil || q.State == Running && found.State != Running {
			found = q
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, sel)
	}
	return found, nil
}

// parseListing reads the list script's records. The sandbox wrote them:
// a record that does not parse ends the listing with an error, a config
// that is not a spec leaves the process without one.
func parseListing(r io.Reader) ([]Process, error) {
	br := bufio.NewReaderSize(r, 512)
	var out []Process
	for {
		line, err := readLine(br, 512)
		if err == io.EOF && line == "" {
			return out, nil
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		p, n, err := parseRecord(line)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			buf := make([]byte, n)
			if _, err := io.ReadFull(br, buf); err != nil {
				return nil, fmt.Errorf("the sandbox's process listing ended inside a record: %w", err)
			}
			var s Spec
			if json.Unmarshal(buf, &s) == nil {
				p.Spec = s
			}
		}
		out = append(out, p)
	}
}

// parseRecord parses "AKP ID PID ALIVE SUPERALIVE EXIT SIGNAL LEN".
func parseRecord(line string) (Process, int, error) {
	bad := func() (Process, int, error) {
		return Process{}, 0, fmt.Errorf("the sandbox's process listing has a line that is not a record: %q", untrusted.Line(line, 100))
	}
	f := strings.Fields(line)
	if len(f) != 8 || f[0] != "AKP" || !validID(f[1]) {
		return bad()
	}
	pid, ok1 := number(f[2])
	alive, ok2 := number(f[3])
	super, ok3 := number(f[4])
	code, ok4 := number(f[5])
	sig, ok5 := number(f[6])
	n, ok6 := number(f[7])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || pid <= 0 || n > maxConfig {
		return bad()
	}
	p := Process{ID: f[1], PID: pid, State: state(alive == 1, super == 1, code)}
	if p.State == Exited {
		p.Exit = exitOf(code, sig)
	}
	return p, max(n, 0), nil
}

// state: an exit status counts once the process and its supervisor, which
// writes the status last, are gone (a process that writes its own is
// still running); a live supervisor is still draining output; without
// either, and without a status, the process was lost.
func state(alive, super bool, code int) State {
	switch {
	case alive || super:
		return Running
	case code >= 0:
		return Exited
	}
	return Lost
}

// exitOf: code is wait's status; sig the last signal this package sent.
func exitOf(code, sig int) Exit {
	if sig > 0 && code == 128+sig {
		return Exit{Code: code, Signal: sig}
	}
	return Exit{Code: code}
}

// number parses a non-negative decimal of at most 10 digits; "-" is -1.
func number(s string) (int, bool) {
	if s == "-" {
		return -1, true
	}
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n <= 1<<31-1
}

// readLine reads one line of at most max bytes, without its newline.
func readLine(br *bufio.Reader, max int) (string, error) {
	var b bytes.Buffer
	for {
		c, err := br.ReadByte()
		if err != nil {
			return b.String(), err
		}
		if c == '\n' {
			return b.String(), nil
		}
		if b.Len() >= max {
			return "", fmt.Errorf("the sandbox sent a line longer than %d bytes where a header belongs", max)
		}
		b.WriteByte(c)
	}
}
