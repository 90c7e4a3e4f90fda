package testexec

import (
	"io"
	"os/exec"
	"testing"
	"time"
)

// StdoutOutlivesStdin fails t unless command, run on this machine, keeps
// its stdout open until its stdin has ended. containerd's CRI exec closes
// an exec's stdin as soon as its stdout reaches EOF
// (containerd/containerd#13934), so a script that hands its stdin to
// `exec cat >file` loses what has not arrived yet: a real node kept 192 KiB
// of an upload. The script's shell must hold the exec's stdout while the
// copy runs. first is written before the check, then stdin is closed.
func StdoutOutlivesStdin(t *testing.T, command []string, first []byte) {
	t.Helper()
	c := exec.Command(command[0], command[1:]...)
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, out)
		close(eof)
	}()
	if _, err := in.Write(first); err != nil {
		t.Fatal(err)
	}
	select {
	case <-eof:
		_ = in.Close()
		_ = c.Wait()
		t.Fatalf("%q closed its stdout while its stdin was still open: a CRI exec would have cut its stdin there", command)
	case <-time.After(300 * time.Millisecond):
	}
	_ = in.Close()
	<-eof
	_ = c.Wait()
}
