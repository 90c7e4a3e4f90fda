package mcp

import (
	"context"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// claimExecutor plays the delivery of a claim's environment (which would
// write into the host's filesystem) and hands every other exec to the host.
type claimExecutor struct {
	*hostExecutor
	mu        sync.Mutex
	delivered []string // the stdin of each delivery
	urls      []string
}

func (c *claimExecutor) ExecuteWithContext(ctx context.Context, u *url.URL, cfg *restclient.Config, stdin io.Reader, stdout, stderr io.Writer, tty bool, q remotecommand.TerminalSizeQueue) error {
	cmd := u.Query()["command"]
	c.mu.Lock()
	c.urls = append(c.urls, u.String())
	c.mu.Unlock()
	if len(cmd) > 3 && cmd[3] == "agentkernel-claim" {
		b, _ := io.ReadAll(stdin)
		c.mu.Lock()
		c.delivered = append(c.delivered, string(b))
		c.mu.Unlock()
		return nil
	}
	return c.hostExecutor.ExecuteWithContext(ctx, u, cfg, stdin, stdout, stderr, tty, q)
}

// poolIn makes pool name with size ready members in cs.
func poolIn(t *testing.T, cs *fake.Clientset, name string, size int, mutate func(*sandbox.Spec)) {
	t.Helper()
	spec := sandbox.NewSpec(name, testNamespace)
	if mutate != nil {
		mutate(&spec)
	}
	p, err := pool.NewPool(name, spec, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CreatePool(context.Background(), cs, p, pool.PoolOptions{}); err != nil {
		t.Fatal(err)
	}
}

func warm(pods []corev1.Pod, pool string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Labels[sandbox.LabelPool] == pool && p.Labels[sandbox.LabelSandbox] == "" {
			out = append(out, p)
		}
	}
	return out
}

// create_sandbox with a pool claims a warm member through pool.Acquire:
// the server's secret comes with the claim (over exec stdin only), every
// exec sources it, the sandbox counts under --max-sandboxes and is deleted
// when the session ends, and the pool is whole again by then.
func TestWarmPoolsClaim(t *testing.T) {
	const secret = "sk-mcp-pool-secret-0815"
	cs := fakeCluster()
	poolIn(t, cs, "fast", 1, nil)
	ex := &claimExecutor{hostExecutor: &hostExecutor{}}
	f := start(t, cs, ex.hostExecutor, func(o *Options) {
		o.Executor = ex
		o.Pools = WarmPools()
		o.MaxSandboxes = 1
		o.Spec.SecretEnvNames = []string{"API_KEY"}
		o.SecretValues = map[string]string{"API_KEY": secret}
	})
	member := warm(f.pods(), "fast")[0]
	got := ok[SandboxInfo](f, toolCreate, map[string]any{"name": "quick", "pool": "fast", "ttl": "10m"})
	if !got.Usable || !got.CreatedByServer || got.Name != "quick" || got.ExpiresAt == "" {
		t.Fatalf("claimed %+v", got)
	}
	claimed, err := sandbox.Find(context.Background(), cs, testNamespace, "quick")
	if err != nil || claimed.UID != member.UID || !strings.HasPrefix(claimed.Name, sandbox.PoolMemberPrefix("fast")) {
		t.Fatalf("sandbox quick is %v (%v), want the warm member %s", claimed, err, member.Name)
	}
	if len(ex.delivered) != 1 || !strings.Contains(ex.delivered[0], secret) {
		t.Fatalf("the claim's secret did not go in over stdin: %q", ex.delivered)
	}
	out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "quick", "command": []string{"echo", "hi"}})
	if out.ExitCode != 0 || out.Stdout != "hi\n" {
		t.Fatalf("exec: %+v", out)
	}
	ex.mu.Lock()
	last := ex.urls[len(ex.urls)-1]
	ex.mu.Unlock()
	if !strings.Contains(last, url.QueryEscape(sandbox.EnvFileOf(claimed))) || sandbox.EnvFileOf(claimed) == "" {
		t.Errorf("exec does not source the claim's environment file: %s", last)
	}
	// Counted like any sandbox of the session.
	f.fails(toolCreate, map[string]any{"name": "more", "pool": "fast"}, "at most 1 sandboxes at once")
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	pods := f.pods()
	if w := warm(pods, "fast"); len(pods) != 1 || len(w) != 1 || w[0].UID == member.UID {
		t.Fatalf("after the session: %d pods, %d warm; want only the claimed member's replacement", len(pods), len(w))
	}
	for _, u := range ex.urls {
		if strings.Contains(u, secret) {
			t.Fatalf("the secret is in an exec request: %s", u)
		}
	}
	if strings.Contains(f.log.String(), secret) {
		t.Fatal("the secret is in the log")
	}
	if !strings.Contains(f.log.String(), "claimed warm from pool") {
		t.Errorf("the log does not say the claim was warm:\n%s", f.log)
	}
}

// A pool more open or bigger than the server allows is refused before a
// member is taken; a missing pool is a tool error that says so.
func TestWarmPoolsStayWithinTheServersLimits(t *testing.T) {
	cs := fakeCluster()
	poolIn(t, cs, "open", 1, func(s *sandbox.Spec) {
		s.Profile = sandbox.ProfilePermissive
		s.Network, s.ReadOnlyRoot = s.Profile.Defaults()
		s.Memory.Set(8 << 30)
	})
	f := start(t, cs, &hostExecutor{}, func(o *Options) { o.Pools = WarmPools() })
	before := f.pods()
	f.fails(toolCreate, map[string]any{"name": "wide", "pool": "open"},
		`pool "open" in namespace "agents": this server may not use its sandboxes: its network "open" is more open than this server's "none"; its root filesystem is writable, and this server's read-only; its memory 8Gi is more than this server's 1Gi`)
	f.fails(toolCreate, map[string]any{"name": "nope", "pool": "nope"}, `pool "nope" not found`)
	after := f.pods()
	if len(after) != len(before) || len(warm(after, "open")) != 1 {
		t.Fatalf("a refused claim changed the pods: %d → %d", len(before), len(after))
	}
	// The names are free again, and places under --max-sandboxes too.
	ok[ListOutput](f, toolList, map[string]any{})
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
}
