package main

// The serve rows (issue #23): E2B's own JS SDK (npm `e2b`, pinned in
// test/e2bsdk) against `kubectl agentkernel serve`, timed around the SDK
// call in one long-lived Node process (test/e2bsdk/bench.mjs), as an
// application makes them. The kubectl side of each row is the kubectl side
// of the row that does the same work with our CLI or the MCP server, so
// the ratios of the three line up in one table: "create → exec-ready",
// "create --pool → exec-ready (warm claim)", "exec -- true ×20, sequential"
// and its MCP row.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// e2bPublished is what E2B publishes for its own cloud, quoted in the
// notes: a sandbox from Sandbox.create() in about 150 ms (Firecracker
// snapshot restore).
const e2bPublished = "E2B publishes ~150 ms for Sandbox.create() in its cloud (a Firecracker snapshot restored on a warm host)"

func serveRows() []*Scenario {
	const poolName = "bench-e2b"
	return []*Scenario{
		{
			Name:    "Sandbox.create() → exec-ready, E2B SDK through serve",
			Cluster: true,
			Setup:   func(ctx context.Context, e *Env) error { _, err := sdkBench(ctx, e); return err },
			Ours:    sdkCreateSide(""),
			Kubectl: Side{
				Label: "kubectl create -f + kubectl wait --for=condition=Ready",
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.kubectlCreateReady(ctx, fmt.Sprintf("ke%d", round), map[string]string{roundLabel: "ke"}, "", "")
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error { return e.deleteKubectlPods(ctx, roundLabel+"=ke") },
			},
			Note: "cold: the SDK's create returns a sandbox its commands can run in; against the row create → exec-ready, our CLI's; " + e2bPublished,
		},
		{
			Name:    "Sandbox.create(POOL) → exec-ready (warm claim), E2B SDK through serve",
			Cluster: true,
			Setup: func(ctx context.Context, e *Env) error {
				if err := benchPool(ctx, e, poolName, 1); err != nil {
					return err
				}
				_, err := sdkBench(ctx, e)
				return err
			},
			Ours: func() Side {
				s := sdkCreateSide(poolName)
				s.Prepare = func(ctx context.Context, e *Env, round int) error { return readyMembers(ctx, e, poolName, 1) }
				return s
			}(),
			Kubectl: Side{
				Label: "kubectl create -f + kubectl wait --for=condition=Ready (cold)",
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.kubectlCreateReady(ctx, fmt.Sprintf("kp%d", round), map[string]string{roundLabel: "kp"}, e.ScaleCPU, e.ScaleMem)
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error { return e.deleteKubectlPods(ctx, roundLabel+"=kp") },
			},
			Note: "the template is the pool's name: a claim of a member that was Running before the clock started; against the row create --pool → exec-ready, our CLI's; " + e2bPublished,
		},
		{
			Name:    fmt.Sprintf("commands.run('true') ×%d, E2B SDK through serve, sequential", execBatch),
			Cluster: true,
			Setup: func(ctx context.Context, e *Env) error {
				if err := needWarm(ctx, e); err != nil {
					return err
				}
				b, err := sdkBench(ctx, e)
				if err != nil {
					return err
				}
				return b.needSandbox(ctx)
			},
			Ours: Side{
				Label: "commands.run('true') in one sandbox, each waiting for the last (Connect-RPC to serve, a pods/exec per command)",
				Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
					b, err := sdkBench(ctx, e)
					if err != nil {
						return Sample{}, err
					}
					r, err := b.call(ctx, map[string]any{"op": "run", "id": b.execID, "cmd": "true", "n": execBatch})
					return Sample{Wall: r.wall(), Ops: execBatch}, err
				},
			},
			Kubectl: kubectlExecBatch(),
			Note:    "against the rows exec -- true ×20 (our CLI, one process per command and in-process) and through MCP; E2B's commands.run is a Connect-RPC stream to envd in the sandbox, serve's a pods/exec",
		},
	}
}

// sdkCreateSide is Sandbox.create(template) through the SDK ("": the
// default template); the sandbox is killed and gone before the next round.
func sdkCreateSide(template string) Side {
	label := "Sandbox.create() in one Node process (E2B's JS SDK → serve)"
	req := map[string]any{"op": "create"}
	if template != "" {
		label = "Sandbox.create(POOL) in one Node process (E2B's JS SDK → serve → a claim)"
		req["template"] = template
	}
	var id string
	return Side{
		Label: label,
		Run: func(ctx context.Context, e *Env, _ int) (Sample, error) {
			b, err := sdkBench(ctx, e)
			if err != nil {
				return Sample{}, err
			}
			r, err := b.call(ctx, req)
			id = r.ID
			return Sample{Wall: r.wall()}, err
		},
		Cleanup: func(ctx context.Context, e *Env, _ int) error {
			b, err := sdkBench(ctx, e)
			if err != nil {
				return err
			}
			if _, err := b.call(ctx, map[string]any{"op": "kill", "id": id}); err != nil {
				return err
			}
			return waitNone(ctx, e, metav1.ListOptions{FieldSelector: "metadata.name=" + sandbox.PodName(id)})
		},
	}
}

// sdkAnswer is one answer of test/e2bsdk/bench.mjs.
type sdkAnswer struct {
	MS    float64 `json:"ms"`
	ID    string  `json:"id"`
	Error string  `json:"error"`
}

func (a sdkAnswer) wall() time.Duration { return time.Duration(a.MS * float64(time.Millisecond)) }

// serveBench is the run's one serve and the Node process that drives it.
type serveBench struct {
	serve, node *exec.Cmd
	stdin       io.WriteCloser
	answers     *bufio.Scanner
	execID      string // the sandbox of the commands.run row
}

var (
	sdkOnce    sync.Once
	sdkRunning *serveBench
	sdkErr     error
)

// sdkBench starts serve and the driver on first use. They live until
// stopSDKBench (the end of the run).
func sdkBench(ctx context.Context, e *Env) (*serveBench, error) {
	if err := needCluster(ctx, e); err != nil {
		return nil, err
	}
	sdkOnce.Do(func() { sdkRunning, sdkErr = startSDKBench(ctx, e) })
	return sdkRunning, sdkErr
}

var serveVar = regexp.MustCompile(`\b(E2B_API_URL|E2B_SANDBOX_URL|E2B_API_KEY)=("[^"]*"|'[^']*'|[^\s;]+)`)

func startSDKBench(ctx context.Context, e *Env) (*serveBench, error) {
	out, err := exec.CommandContext(ctx, "hack/e2bsdk.sh").Output()
	if err != nil {
		return nil, fmt.Errorf("installing the e2b SDK (hack/e2bsdk.sh, run from the repository root): %w", err)
	}
	dir := strings.TrimSpace(string(out))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	b := &serveBench{}
	// --network open: the network of the compared rows (and of the pool's
	// members, which a claim may not widen past serve's own).
	b.serve = exec.Command(e.Plugin, "serve", "--kubeconfig", e.Kubeconfig, "-n", e.Namespace, "--listen", addr, "--network", "open")
	b.serve.Env = e.childEnv
	// Ended with the bench even when it dies: nothing else would end it.
	b.serve.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	serveLog, err := os.Create(filepath.Join(e.Tmp, "serve.log"))
	if err != nil {
		return nil, err
	}
	b.serve.Stderr = serveLog
	stdout, err := b.serve.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := b.serve.Start(); err != nil {
		return nil, fmt.Errorf("starting serve: %w", err)
	}
	vars := map[string]string{}
	lines := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(time.Minute, func() { _ = b.serve.Process.Kill() })
	for len(vars) < 3 && lines.Scan() {
		for _, m := range serveVar.FindAllStringSubmatch(lines.Text(), -1) {
			vars[m[1]] = strings.Trim(m[2], `"'`)
		}
	}
	deadline.Stop()
	if len(vars) < 3 {
		b.stop()
		return nil, fmt.Errorf("serve did not print E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY (its log: %s)", serveLog.Name())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	b.node = exec.Command("node", filepath.Join(dir, "bench.mjs"))
	b.node.Dir = dir
	b.node.Env = append(os.Environ(), "E2B_API_URL="+vars["E2B_API_URL"], "E2B_SANDBOX_URL="+vars["E2B_SANDBOX_URL"], "E2B_API_KEY="+vars["E2B_API_KEY"])
	b.node.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	b.node.Stderr = os.Stderr
	if b.stdin, err = b.node.StdinPipe(); err != nil {
		b.stop()
		return nil, err
	}
	nodeOut, err := b.node.StdoutPipe()
	if err != nil {
		b.stop()
		return nil, err
	}
	b.answers = bufio.NewScanner(nodeOut)
	if err := b.node.Start(); err != nil {
		b.stop()
		return nil, fmt.Errorf("starting node (Node.js 20 or newer): %w", err)
	}
	return b, nil
}

// call sends one request and waits for its answer.
func (b *serveBench) call(ctx context.Context, req map[string]any) (sdkAnswer, error) {
	line, _ := json.Marshal(req)
	if _, err := b.stdin.Write(append(line, '\n')); err != nil {
		return sdkAnswer{}, fmt.Errorf("the SDK driver: %w", err)
	}
	if !b.answers.Scan() {
		return sdkAnswer{}, errors.New("the SDK driver ended without an answer")
	}
	var a sdkAnswer
	if err := json.Unmarshal(b.answers.Bytes(), &a); err != nil {
		return a, fmt.Errorf("the SDK driver answered %q: %w", b.answers.Text(), err)
	}
	if a.Error != "" {
		return a, fmt.Errorf("%s: %s", req["op"], a.Error)
	}
	return a, ctx.Err()
}

// needSandbox makes the long-lived sandbox of the commands.run row.
func (b *serveBench) needSandbox(ctx context.Context) error {
	if b.execID != "" {
		return nil
	}
	a, err := b.call(ctx, map[string]any{"op": "create"})
	b.execID = a.ID
	return err
}

// stop ends the driver (which kills the sandboxes it made) and serve.
func (b *serveBench) stop() {
	if b.node != nil && b.node.Process != nil {
		_ = b.stdin.Close()
		done := make(chan struct{})
		go func() { _ = b.node.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = b.node.Process.Kill()
		}
	}
	if b.serve != nil && b.serve.Process != nil {
		_ = b.serve.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = b.serve.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = b.serve.Process.Kill()
		}
	}
}

// stopSDKBench ends serve and the driver if the run started them.
func stopSDKBench() {
	if sdkRunning != nil {
		sdkRunning.stop()
	}
}
