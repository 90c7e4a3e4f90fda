package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// mounter is the node side's one privileged job; the unit tests replace it,
// since nothing may be mounted on the host.
type mounter interface {
	// bind mounts source at target (made if missing); done again it is a
	// no-op.
	bind(source, target string, readOnly bool) error
	// unbind unmounts target and removes it; a target that is not mounted
	// or not there is done.
	unbind(target string) error
}

// mountPoints lists the mount points in a /proc/self/mountinfo, whose fifth
// field is the mount point with space, tab, newline and backslash written in
// octal.
func mountPoints(r io.Reader) ([]string, error) {
	var points []string
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) < 5 {
			return nil, fmt.Errorf("mountinfo line %q has fewer than 5 fields", s.Text())
		}
		points = append(points, unescapeOctal(f[4]))
	}
	return points, s.Err()
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isMountPoint says whether path is a mount point now.
func isMountPoint(path string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	points, err := mountPoints(f)
	if err != nil {
		return false, err
	}
	for _, p := range points {
		if p == path {
			return true, nil
		}
	}
	return false, nil
}

// removeTarget removes an unmounted target directory; one that is gone is
// done.
func removeTarget(target string) error {
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
