// Command timeproc runs a command and writes its wall time and peak RSS to
// file descriptor 3: "WALL_NS MAXRSS_KB EXIT_CODE".
//
// The bench cannot take the peak RSS from its own children: Go starts a child
// with vfork (CLONE_VM), and at exec Linux carries the parent's high-water
// RSS into the child's ru_maxrss — every child of the bench would report at
// least the bench's own 60 MB. This program is small (a few MB), so what it
// passes on is below any child's real peak, and max() leaves that intact.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: timeproc COMMAND [ARG...] 3>REPORT")
		os.Exit(2)
	}
	report := os.NewFile(3, "report")
	c := exec.Command(os.Args[1], os.Args[2:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := c.Run()
	wall := time.Since(start)
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		fmt.Fprintln(os.Stderr, "timeproc:", err)
		os.Exit(127)
	}
	var maxrss int64
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxrss = ru.Maxrss
	}
	if _, err := fmt.Fprintf(report, "%d %d %d\n", wall.Nanoseconds(), maxrss, code); err != nil {
		fmt.Fprintln(os.Stderr, "timeproc: writing the report:", err)
		os.Exit(127)
	}
	os.Exit(code)
}
