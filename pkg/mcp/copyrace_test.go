package mcp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// The secret outside --root (a fake ~/.ssh/id_rsa) and the benign file the
// flipper puts in its place: the same length, so a copy that sized the
// benign file and then read through a flipped link would carry the secret.
const (
	secretMarker = "SECRET-KEY-MATERIAL-0123456789"
	benignText   = "benign-file-contents-012345678"
)

// flipStates turns the entry at p into, in turn: a regular file, a
// directory holding a benign id_rsa, a symlink to the secret directory and
// a symlink to the secret file.
func flip(p, secretDir string, state int) {
	_ = os.RemoveAll(p)
	switch state % 4 {
	case 0:
		_ = os.WriteFile(p, []byte(benignText), 0o644)
	case 1:
		if os.Mkdir(p, 0o755) == nil {
			_ = os.WriteFile(filepath.Join(p, "id_rsa"), []byte(benignText), 0o644)
		}
	case 2:
		_ = os.Symlink(secretDir, p)
	case 3:
		_ = os.Symlink(filepath.Join(secretDir, "id_rsa"), p)
	}
}

// runFlipper flips every path until stop is closed, counting flips in n.
func runFlipper(paths []string, secretDir string, stop <-chan struct{}, n *atomic.Int64) {
	for state := 0; ; state++ {
		select {
		case <-stop:
			return
		default:
		}
		for _, p := range paths {
			flip(p, secretDir, state+len(p))
			n.Add(1)
		}
	}
}

// TestHelperFlipperProcess is the flipper as a process of its own (run by
// TestCopyUnderRootRacingFlipper, not by go test): a local attacker does
// not share the server's scheduler.
func TestHelperFlipperProcess(t *testing.T) {
	paths := os.Getenv("AGENTKERNEL_TEST_FLIP_PATHS")
	if paths == "" {
		t.Skip("run by TestCopyUnderRootRacingFlipper")
	}
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
		close(stop)
	}()
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		runFlipper(strings.Split(paths, "\n"), os.Getenv("AGENTKERNEL_TEST_FLIP_SECRET"), stop, &n)
	}()
	for { // the count, as it goes, for the parent
		select {
		case <-done:
			fmt.Printf("flips=%d\n", n.Load())
			return
		case <-time.After(50 * time.Millisecond):
			fmt.Printf("flips=%d\n", n.Load())
		}
	}
}

// tapExecutor records every byte a copy streams into a sandbox.
type tapExecutor struct {
	*hostExecutor
	mu   sync.Mutex
	seen bytes.Buffer
}

func (e *tapExecutor) ExecuteWithContext(ctx context.Context, u *url.URL, c *restclient.Config, stdin io.Reader, stdout, stderr io.Writer, tty bool, q remotecommand.TerminalSizeQueue) error {
	if stdin != nil {
		var buf bytes.Buffer
		err := e.hostExecutor.ExecuteWithContext(ctx, u, c, io.TeeReader(stdin, &buf), stdout, stderr, tty, q)
		e.mu.Lock()
		e.seen.Write(buf.Bytes())
		e.mu.Unlock()
		return err
	}
	return e.hostExecutor.ExecuteWithContext(ctx, u, c, stdin, stdout, stderr, tty, q)
}

func (e *tapExecutor) leaked() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return bytes.Contains(e.seen.Bytes(), []byte(secretMarker))
}

// TestCopyUnderRootRacingFlipper races copy_in and copy_out, called
// concurrently through the real tool handlers, against a flipper that turns
// entries inside --root into links to a fake ~/.ssh and back, thousands of
// times. Nothing outside the root may be read into a sandbox's tar stream,
// nor written.
func TestCopyUnderRootRacingFlipper(t *testing.T) {
	for _, mode := range []string{"goroutine", "process"} {
		t.Run(mode, func(t *testing.T) { raceCopies(t, mode) })
	}
}

func raceCopies(t *testing.T, mode string) {
	root, secretDir, box := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(secretDir, "id_rsa"), []byte(secretMarker), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tree", "keep.txt"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// What the hostile sandbox hands out: a key file, and a tree holding one.
	for name, content := range map[string]string{"payload/authorized_keys": "ssh-ed25519 ATTACKER\n", "payload/keys/authorized_keys": "ssh-ed25519 ATTACKER\n"} {
		p := filepath.Join(box, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flipPaths := []string{filepath.Join(root, "flip"), filepath.Join(root, "tree", "flip")}

	ex := &tapExecutor{hostExecutor: &hostExecutor{}}
	f := start(t, fakeCluster(), ex.hostExecutor, func(o *Options) { o.Root = root; o.Executor = ex })
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "race"})

	stop := make(chan struct{})
	var flips atomic.Int64
	var flipperDone sync.WaitGroup
	switch mode {
	case "goroutine":
		flipperDone.Add(1)
		go func() {
			defer flipperDone.Done()
			runFlipper(flipPaths, secretDir, stop, &flips)
		}()
	case "process":
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFlipperProcess$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "AGENTKERNEL_TEST_FLIP_PATHS="+strings.Join(flipPaths, "\n"), "AGENTKERNEL_TEST_FLIP_SECRET="+secretDir)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		flipperDone.Add(1)
		go func() {
			defer flipperDone.Done()
			<-stop
			_ = in.Close()
		}()
		flipperDone.Add(1)
		go func() {
			defer flipperDone.Done()
			lines := bufio.NewScanner(out)
			for lines.Scan() {
				if v, ok := strings.CutPrefix(lines.Text(), "flips="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					flips.Store(n)
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("flipper process: %v", err)
			}
		}()
	}

	// escaped says whether anything outside the root was read or written.
	escaped := func() string {
		if ex.leaked() {
			return "the secret outside --root was streamed into the sandbox"
		}
		entries, err := os.ReadDir(secretDir)
		if err != nil || len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			return fmt.Sprintf("something was written outside --root: %v (%v)", names, err)
		}
		if b, err := os.ReadFile(filepath.Join(secretDir, "id_rsa")); err != nil || string(b) != secretMarker {
			return fmt.Sprintf("the file outside --root changed: %q, %v", b, err)
		}
		return ""
	}

	type call struct {
		tool string
		args map[string]any
	}
	var n atomic.Int64
	var succeeded [2]atomic.Int64 // copy_in, copy_out
	var found atomic.Value
	next := func() call {
		i := n.Add(1)
		into := fmt.Sprintf("%s/in-%d/", box, i)
		calls := []call{
			{toolCopyIn, map[string]any{"sandbox": "race", "local_path": "flip", "sandbox_path": into}},
			{toolCopyIn, map[string]any{"sandbox": "race", "local_path": "flip/id_rsa", "sandbox_path": into}},
			{toolCopyIn, map[string]any{"sandbox": "race", "local_path": "tree", "sandbox_path": into}},
			{toolCopyOut, map[string]any{"sandbox": "race", "sandbox_path": box + "/payload/authorized_keys", "local_path": "flip/authorized_keys"}},
			{toolCopyOut, map[string]any{"sandbox": "race", "sandbox_path": box + "/payload/authorized_keys", "local_path": "flip/"}},
			{toolCopyOut, map[string]any{"sandbox": "race", "sandbox_path": box + "/payload/keys", "local_path": "tree/flip/"}},
			{toolCopyOut, map[string]any{"sandbox": "race", "sandbox_path": box + "/payload/authorized_keys", "local_path": "tree/flip"}},
		}
		return calls[i%int64(len(calls))]
	}

	// At least this many calls and flips; a loaded machine gets more time,
	// not fewer rounds.
	rounds, minFlips, deadline := int64(1200), int64(3000), time.Now().Add(3*time.Minute)
	if testing.Short() {
		rounds = 400
	}
	more := func() bool {
		if found.Load() != nil || time.Now().After(deadline) {
			return false
		}
		return n.Load() < rounds || flips.Load() < minFlips
	}
	var workers sync.WaitGroup
	for range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for more() {
				c := next()
				res, err := f.session.CallTool(context.Background(), &sdk.CallToolParams{Name: c.tool, Arguments: c.args})
				if err != nil {
					found.Store(fmt.Sprintf("%s: protocol error: %v", c.tool, err))
					return
				}
				if !res.IsError {
					if c.tool == toolCopyIn {
						succeeded[0].Add(1)
					} else {
						succeeded[1].Add(1)
					}
				}
				if why := escaped(); why != "" {
					found.Store(fmt.Sprintf("after %d calls, %s(%v): %s", n.Load(), c.tool, c.args, why))
					return
				}
			}
		}()
	}
	workers.Wait()
	close(stop)
	flipperDone.Wait()
	if why, _ := found.Load().(string); why != "" {
		t.Fatal(why)
	}
	if why := escaped(); why != "" {
		t.Fatal(why)
	}
	// A race that never happened proves nothing: the flipper must have
	// flipped thousands of times, and copies must have gone through.
	t.Logf("%s flipper: %d flips during %d calls; %d copy_in and %d copy_out succeeded", mode, flips.Load(), n.Load(), succeeded[0].Load(), succeeded[1].Load())
	if flips.Load() < minFlips || succeeded[0].Load() == 0 || succeeded[1].Load() == 0 {
		t.Fatalf("the race did not happen: %d flips, %d copy_in and %d copy_out succeeded", flips.Load(), succeeded[0].Load(), succeeded[1].Load())
	}
	// Nothing the sandbox received carries the secret, whatever form it took.
	_ = filepath.WalkDir(box, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secretMarker)) {
				t.Errorf("%s in the sandbox holds the secret", p)
			}
		}
		return nil
	})
}
