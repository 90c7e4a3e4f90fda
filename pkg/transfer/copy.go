package transfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// CopyToSandbox copies a local file or directory into a sandbox, streaming
// a tar archive into the sandbox's tar. If remote ends in '/', the source
// goes into that directory (created if needed); if it names an existing
// directory, the source goes into it; otherwise the source is copied to that
// name. Without tar in the image a single file is still copied with cat.
//
// A source that is itself a symlink is followed (copying ./link copies what
// it points at, under the link's name); links inside a directory are copied
// as links.
func CopyToSandbox(ctx context.Context, r sandbox.Runner, local, remote string, warn io.Writer) error {
	info, err := os.Stat(local)
	if err != nil {
		return fmt.Errorf("cannot copy %q: %v", local, errors.Unwrap(err))
	}
	abs, err := filepath.Abs(local)
	if err != nil {
		return err
	}
	base := filepath.Base(abs)
	src, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("cannot copy %q: %v", local, err)
	}
	if base == string(filepath.Separator) || base == "." {
		return fmt.Errorf("cannot copy the root directory %q: name a directory below it", local)
	}
	cmd, dest, into := extractCommand(remote, base)
	var stderr untrusted.Buffer
	runErr, err := sendTar(ctx, r, cmd, &stderr, func(w io.Writer) error { return WriteTar(w, src, base, warn) })
	if err != nil {
		return fmt.Errorf("reading %s: %w", local, err) // a local failure explains the remote one
	}
	if runErr == nil {
		return nil
	}
	if code, ok := sandbox.ExitCode(runErr); ok && code == exitNotFound {
		if !info.Mode().IsRegular() {
			return ErrNoTar
		}
		fmt.Fprintln(warn, "warning: the sandbox image has no tar; copying the single file with cat")
		return catToSandbox(ctx, r, src, dest, base, into)
	}
	return copyError("copy into the sandbox", runErr, &stderr)
}

// extractCommand is the command that unpacks a tar stream of base at
// remote: into it when remote ends in "/", else as CopyToSandbox says. It
// returns remote without its trailing "/" (the root stays "/") and whether
// it was "into".
func extractCommand(remote, base string) (cmd []string, dest string, into bool) {
	into = strings.HasSuffix(remote, "/")
	dest = strings.TrimSuffix(remote, "/")
	if dest == "" {
		dest = "/"
	}
	if into {
		return []string{"sh", "-c", extractIntoScript, "sh", dest}, dest, true
	}
	return []string{"sh", "-c", extractScript, "sh", dest, base, path.Dir(dest)}, dest, false
}

// sendTar runs cmd in the sandbox with what writeTar writes as its stdin.
// It returns the command's error and, apart, the local writer's: a local
// failure explains the remote one, so callers report it first.
func sendTar(ctx context.Context, r sandbox.Runner, cmd []string, stderr io.Writer, writeTar func(io.Writer) error) (runErr, writeErr error) {
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		// Every Read of the exec's stdin becomes one message through the
		// API server and the kubelet, and tar writes a 512-byte header and
		// each small file apart: unbuffered, 5,000 small files cost 15,000
		// messages. Whole chunks cost one per streamChunk.
		bw := bufio.NewWriterSize(pw, streamChunk)
		err := writeTar(bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		written <- err
	}()
	runErr = r.Run(ctx, cmd, pr, io.Discard, stderr)
	// Stops the tar writer if the sandbox stopped reading early.
	pr.CloseWithError(errSandboxStopped)
	if err := <-written; err != nil && !errors.Is(err, errSandboxStopped) {
		return runErr, err
	}
	return runErr, nil
}

func catToSandbox(ctx context.Context, r sandbox.Runner, local, dest, base string, into bool) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	mode := ""
	if into {
		mode = "into"
	}
	var stderr untrusted.Buffer
	if err := r.Run(ctx, []string{"sh", "-c", catInScript, "sh", dest, base, mode, path.Dir(dest)}, f, io.Discard, &stderr); err != nil {
		return copyError("copy into the sandbox", err, &stderr)
	}
	return nil
}

// CopyFromSandbox copies a file or directory out of a sandbox. Everything
// coming out of the sandbox is hostile: entries outside the requested path,
// absolute names, "..", sparse files, device files and links that do not
// lead down from where they stand (see copylinks.go) are refused or
// skipped; nothing is ever written through a link; and limits bound the
// bytes and entries written.
func CopyFromSandbox(ctx context.Context, r sandbox.Runner, remote, local string, limits Limits, warn io.Writer) error {
	remote = strings.TrimSuffix(remote, "/")
	if remote == "" || remote == "/" {
		return fmt.Errorf("cannot copy the sandbox's root directory: name a directory below it, e.g. %s", sandbox.WorkspaceDir)
	}
	_, base := path.Split(remote)
	target, root, err := localTarget(local, base)
	if err != nil {
		return err
	}
	defer root.Close()

	return copyOut(ctx, r, remote, root, target, limits, warn)
}

// copyOut streams remote out of the sandbox into target inside root: the
// one body of CopyFromSandbox and CopyFromSandboxIn.
func copyOut(ctx context.Context, r sandbox.Runner, remote string, root *os.Root, target string, limits Limits, warn io.Writer) error {
	parent, base := path.Split(remote)
	pr, pw := io.Pipe()
	var stderr untrusted.Buffer
	done := make(chan error, 1)
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	go func() {
		err := r.Run(streamCtx, []string{"sh", "-c", archiveScript, "sh", parent, "./" + base}, nil, pw, &stderr)
		pw.CloseWithError(err)
		done <- err
	}()
	// The stream arrives in the exec's chunks, and the tar reader asks for
	// 512 bytes at a time: buffered, a chunk is one hand-over, not dozens.
	in := bufio.NewReaderSize(pr, 2*streamChunk)
	extractErr := extractTar(ctx, in, root, base, target, limits, warn)
	if extractErr == nil {
		// tar pads its archive to a whole record after the end marker; read
		// that (but not an endless stream) so the sandbox's tar exits cleanly.
		_, _ = io.CopyN(io.Discard, in, maxTrailer)
	} else {
		// Extraction stopped early: end the stream rather than let it write
		// into a closed pipe.
		stopStream()
	}
	pr.CloseWithError(errExtractionStopped)
	runErr := <-done
	if code, ok := sandbox.ExitCode(runErr); ok && code == exitNoSuchFile {
		return &NoSuchFileError{Path: remote}
	}
	if code, ok := sandbox.ExitCode(runErr); ok && code == exitNotFound {
		fmt.Fprintln(warn, "warning: the sandbox image has no tar; copying a single file with cat")
		return catFromSandbox(ctx, r, remote, root, target, limits)
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

var (
	errSandboxStopped    = errors.New("the sandbox stopped reading")
	errExtractionStopped = errors.New("extraction stopped")
)

// NoSuchFileError: the path to copy out does not exist in the sandbox.
type NoSuchFileError struct{ Path string }

func (e *NoSuchFileError) Error() string {
	return "no such file in the sandbox: " + e.Path
}

// streamChunk is what one exec stream message carries at most: client-go
// copies stdin with io.Copy's 32 KiB buffer, one message per Read.
const streamChunk = 32 << 10

// maxTrailer bounds what is read after a tar stream's end marker (GNU tar
// pads to 10 KiB records).
const maxTrailer = 1 << 20

func catFromSandbox(ctx context.Context, r sandbox.Runner, remote string, root *os.Root, target string, limits Limits) error {
	f, err := root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	var stderr untrusted.Buffer
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	limit := limits.MaxBytes
	if limit == 0 {
		limit = math.MaxInt64 // Limits: 0 is no limit
	}
	out := &cappedWriter{w: f, limit: limit, stop: stopStream}
	runErr := r.Run(streamCtx, []string{"sh", "-c", catOutScript, "sh", remote}, nil, out, &stderr)
	closeErr := f.Close()
	if out.exceeded {
		_ = root.Remove(target)
		return &LimitError{What: "bytes", Limit: limits.MaxBytes, Field: "maxBytes"}
	}
	if runErr != nil {
		_ = root.Remove(target)
		if code, ok := sandbox.ExitCode(runErr); ok && code == exitNoSuchFile {
			return &NoSuchFileError{Path: remote}
		}
		if code, ok := sandbox.ExitCode(runErr); ok && code == 21 {
			return ErrNoTar
		}
		return copyError("copy out of the sandbox", runErr, &stderr)
	}
	return closeErr
}

func copyError(what string, err error, stderr *untrusted.Buffer) error {
	msg := strings.TrimSpace(stderr.String())
	if code, ok := sandbox.ExitCode(err); ok {
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

// Default limits when the sandbox's Pod says nothing: generous for an
// agent's repository, small next to any disk.
const (
	fallbackMaxBytes = 8 << 30
	minMaxFiles      = 100_000
)

// DefaultLimits ties a copy's limits to the sandbox's own size: everything
// it can write lives within its ephemeral-storage limit, and every entry
// costs it at least one 4 KiB block.
func DefaultLimits(pod *corev1.Pod) Limits {
	limit := int64(fallbackMaxBytes)
	for _, c := range pod.Spec.Containers {
		if c.Name != sandbox.ContainerName {
			continue
		}
		if q, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; ok && q.Value() > 0 {
			limit = q.Value()
		}
	}
	return LimitsFor(limit)
}

// LimitsFor are the limits of a copy that may write maxBytes: one entry
// per 4 KiB of it, and never fewer than minMaxFiles.
func LimitsFor(maxBytes int64) Limits {
	return Limits{MaxBytes: maxBytes, MaxFiles: max(maxBytes/4096, minMaxFiles)}
}
