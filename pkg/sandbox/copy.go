package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Runner runs a command in a sandbox, streaming stdin, stdout and stderr.
// A command that ran and exited non-zero comes back as an error with an
// ExitStatus() int method (client-go's exec.CodeExitError has one).
type Runner interface {
	Run(ctx context.Context, command []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// ExitCode returns the exit status carried by err, if any.
func ExitCode(err error) (int, bool) {
	var exit interface{ ExitStatus() int }
	if errors.As(err, &exit) {
		return exit.ExitStatus(), true
	}
	return 0, false
}

// CopyToSandbox copies a local file or directory into a sandbox, streaming
// a tar archive into the sandbox's tar. If remote ends in '/', the source
// goes into that directory (created if needed); if it names an existing
// directory, the source goes into it; otherwise the source is copied to that
// name. Without tar in the image a single file is still copied with cat.
func CopyToSandbox(ctx context.Context, r Runner, local, remote string, warn io.Writer) error {
	info, err := os.Stat(local)
	if err != nil {
		return fmt.Errorf("cannot copy %q: %v", local, errors.Unwrap(err))
	}
	abs, err := filepath.Abs(local)
	if err != nil {
		return err
	}
	base := filepath.Base(abs)
	if base == string(filepath.Separator) || base == "." {
		return fmt.Errorf("cannot copy the root directory %q: name a directory below it", local)
	}
	into := strings.HasSuffix(remote, "/")
	dest := strings.TrimSuffix(remote, "/")
	if dest == "" {
		dest = "/"
	}
	cmd := []string{"sh", "-c", extractScript, "sh", dest, base, path.Dir(dest)}
	if into {
		cmd = []string{"sh", "-c", extractIntoScript, "sh", dest}
	}

	pr, pw := io.Pipe()
	writeErr := make(chan error, 1)
	go func() {
		err := WriteTar(pw, abs, base, warn)
		pw.CloseWithError(err)
		writeErr <- err
	}()
	var stderr boundedBuffer
	runErr := r.Run(ctx, cmd, pr, io.Discard, &stderr)
	// Stops the tar writer if the sandbox stopped reading early.
	pr.CloseWithError(errSandboxStopped)
	if err := <-writeErr; err != nil && !errors.Is(err, errSandboxStopped) {
		return fmt.Errorf("reading %s: %w", local, err) // a local failure explains the remote one
	}
	if runErr == nil {
		return nil
	}
	if code, ok := ExitCode(runErr); ok && code == exitNotFound {
		if !info.Mode().IsRegular() {
			return ErrNoTar
		}
		fmt.Fprintln(warn, "warning: the sandbox image has no tar; copying the single file with cat")
		return catToSandbox(ctx, r, abs, dest, base, into)
	}
	return copyError("copy into the sandbox", runErr, &stderr)
}

func catToSandbox(ctx context.Context, r Runner, local, dest, base string, into bool) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	mode := ""
	if into {
		mode = "into"
	}
	var stderr boundedBuffer
	if err := r.Run(ctx, []string{"sh", "-c", catInScript, "sh", dest, base, mode, path.Dir(dest)}, f, io.Discard, &stderr); err != nil {
		return copyError("copy into the sandbox", err, &stderr)
	}
	return nil
}

// CopyFromSandbox copies a file or directory out of a sandbox. Everything
// coming out of the sandbox is hostile: entries outside the requested path,
// absolute names, "..", links that leave the copied tree and device files
// are refused or skipped, and nothing is ever written through a link that
// leads out of the destination.
func CopyFromSandbox(ctx context.Context, r Runner, remote, local string, warn io.Writer) error {
	remote = strings.TrimSuffix(remote, "/")
	if remote == "" || remote == "/" {
		return fmt.Errorf("cannot copy the sandbox's root directory: name a directory below it, e.g. %s", WorkspaceDir)
	}
	parent, base := path.Split(remote)
	target, root, err := localTarget(local, base)
	if err != nil {
		return err
	}
	defer root.Close()

	pr, pw := io.Pipe()
	var stderr boundedBuffer
	done := make(chan error, 1)
	go func() {
		err := r.Run(ctx, []string{"sh", "-c", archiveScript, "sh", parent, "./" + base}, nil, pw, &stderr)
		pw.CloseWithError(err)
		done <- err
	}()
	extractErr := extractTar(pr, root, base, target, warn)
	if extractErr == nil {
		// tar pads its archive to a whole record after the end marker; read
		// that (but not an endless stream) so the sandbox's tar exits cleanly.
		_, _ = io.CopyN(io.Discard, pr, maxTrailer)
	}
	// Unblock the sandbox's tar if extraction stopped early.
	pr.CloseWithError(errors.New("extraction stopped"))
	runErr := <-done
	if code, ok := ExitCode(runErr); ok && code == exitNotFound {
		fmt.Fprintln(warn, "warning: the sandbox image has no tar; copying a single file with cat")
		return catFromSandbox(ctx, r, remote, root, target)
	}
	var se *streamError
	if extractErr != nil && !errors.As(extractErr, &se) {
		return extractErr // a refused entry: the sandbox's tar only failed because we stopped reading
	}
	if runErr != nil {
		return copyError("copy out of the sandbox", runErr, &stderr)
	}
	return extractErr
}

// streamError: the tar stream itself broke (the sandbox's side failed or the
// connection dropped), as opposed to an entry being refused.
type streamError struct{ err error }

func (e *streamError) Error() string { return "reading the sandbox's tar stream: " + e.err.Error() }
func (e *streamError) Unwrap() error { return e.err }

var errSandboxStopped = errors.New("the sandbox stopped reading")

// maxTrailer bounds what is read after a tar stream's end marker (GNU tar
// pads to 10 KiB records).
const maxTrailer = 1 << 20

func catFromSandbox(ctx context.Context, r Runner, remote string, root *os.Root, target string) error {
	f, err := root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	var stderr boundedBuffer
	runErr := r.Run(ctx, []string{"sh", "-c", catOutScript, "sh", remote}, nil, f, &stderr)
	closeErr := f.Close()
	if runErr != nil {
		_ = root.Remove(target)
		if code, ok := ExitCode(runErr); ok && code == 21 {
			return ErrNoTar
		}
		return copyError("copy out of the sandbox", runErr, &stderr)
	}
	return closeErr
}

func copyError(what string, err error, stderr *boundedBuffer) error {
	msg := strings.TrimSpace(stderr.String())
	if code, ok := ExitCode(err); ok {
		if msg == "" {
			return fmt.Errorf("%s failed: exit code %d", what, code)
		}
		return fmt.Errorf("%s failed (exit code %d): %s", what, code, msg)
	}
	if msg != "" {
		return fmt.Errorf("%s failed: %v: %s", what, err, msg)
	}
	return fmt.Errorf("%s failed: %w", what, err)
}
