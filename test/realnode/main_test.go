package realnode

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// The whole suite shares one control plane and one guest: booting costs a
// minute or more under TCG.
type suite struct {
	cluster   *localcluster.Cluster
	node      *Node
	client    kubernetes.Interface
	kubectl   string
	plugin    string // "" when the plugin has no create command yet
	pluginWhy string
	namespace string // enforces Pod Security "restricted"
	err       error
}

var (
	env     suite
	timings = map[string][]time.Duration{}
	timeMu  sync.Mutex

	setupReported sync.Once
)

const (
	enableVar   = "AGENTKERNEL_REALNODE"
	suiteBudget = 110 * time.Minute
)

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(enableVar) != "1" || testing.Short() {
		os.Exit(m.Run()) // every test skips and says why
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), suiteBudget)
	defer cancel()
	teardown := setup(ctx)
	code := m.Run()
	printTimings()
	teardown(code == 0)
	return code
}

// setup builds and starts everything; teardown(passed) stops it and keeps
// the guest's logs only when something failed.
func setup(ctx context.Context) (teardown func(passed bool)) {
	logw := os.Stderr
	var steps []func()
	keepLogs := true
	teardown = func(passed bool) {
		keepLogs = !passed || env.err != nil
		for i := len(steps) - 1; i >= 0; i-- {
			steps[i]()
		}
	}
	// The guest's logs live outside the cluster's directory, which Down
	// removes.
	nodeDir, err := os.MkdirTemp("", "agentkernel-realnode-")
	if err != nil {
		env.err = err
		return teardown
	}
	steps = append(steps, func() {
		if keepLogs {
			fmt.Fprintf(logw, "realnode: guest logs kept in %s\n", nodeDir)
			return
		}
		_ = os.RemoveAll(nodeDir)
	})
	t0 := time.Now()
	bins, err := localcluster.Build(ctx, logw)
	if err != nil {
		env.err = fmt.Errorf("build the control plane: %w", err)
		return teardown
	}
	record("build: control plane (cached or not)", time.Since(t0))
	t0 = time.Now()
	art, err := Build(ctx, logw, "")
	if err != nil {
		env.err = err
		return teardown
	}
	record("build: realnode image (cached or not)", time.Since(t0))
	env.kubectl = bins.Kubectl
	env.plugin, env.pluginWhy = buildPlugin(ctx)
	if env.plugin != "" {
		pluginDir := filepath.Dir(env.plugin)
		steps = append(steps, func() { _ = os.RemoveAll(pluginDir) })
	}

	t0 = time.Now()
	c, err := localcluster.Up(ctx, bins, localcluster.Options{Kwok: false, Log: logw})
	if err != nil {
		env.err = fmt.Errorf("start the control plane: %w", err)
		return teardown
	}
	record("control plane up", time.Since(t0))
	env.cluster = c
	steps = append(steps, func() {
		if err := c.Down(); err != nil {
			fmt.Fprintln(logw, "realnode: stopping the control plane:", err)
		}
	})
	bootOpts := Options{Artifacts: art, Dir: nodeDir, NetworkPolicy: true, CSI: true, Log: logw}
	t0 = time.Now()
	node, err := Boot(ctx, c, bootOpts)
	if errors.Is(err, ErrGuestHung) {
		// Once: a second hang is no longer bad luck.
		record("boot: lost to a hung guest", time.Since(t0))
		hungLog := filepath.Join(nodeDir, "console-hung.log")
		_ = os.Rename(filepath.Join(nodeDir, "console.log"), hungLog)
		fmt.Fprintf(logw, "realnode: %v\nrealnode: booting again (the hung boot's console is kept in %s)\n", err, hungLog)
		node, err = Boot(ctx, c, bootOpts)
	}
	if err != nil {
		env.err = err
		return teardown
	}
	env.node = node
	steps = append(steps, func() {
		if err := node.Shutdown(); err != nil {
			fmt.Fprintln(logw, "realnode:", err)
		}
	})
	record("boot: guest init (guest uptime)", node.Timings.GuestInit)
	record("boot: qemu start to node Ready", node.Timings.NodeReady)

	cfg, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		env.err = err
		return teardown
	}
	if env.client, err = kubernetes.NewForConfig(cfg); err != nil {
		env.err = err
		return teardown
	}
	env.namespace = "agentkernel-realnode"
	_, err = env.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: env.namespace,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		env.err = err
		return teardown
	}
	// Pods are rejected until the controller-manager made the namespace's
	// default ServiceAccount.
	env.err = poll(ctx, time.Minute, func() (bool, error) {
		_, err := env.client.CoreV1().ServiceAccounts(env.namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	return teardown
}

// need skips the test unless the suite is enabled and set up.
func need(t *testing.T) *suite {
	t.Helper()
	if testing.Short() {
		t.Skip("realnode: skipped under -short: it boots a kubelet in a qemu guest")
	}
	if os.Getenv(enableVar) != "1" {
		t.Skip("realnode: set " + enableVar + "=1 to boot a real kubelet + containerd in a qemu guest " +
			"(cold: builds for ~40 min; warm: ~3 min); or run test/realnode/run.sh")
	}
	if env.err != nil {
		full := false
		setupReported.Do(func() { full = true })
		if full {
			t.Fatalf("realnode setup failed: %v", env.err)
		}
		first, _, _ := strings.Cut(env.err.Error(), "\n")
		t.Fatalf("realnode setup failed (the first failed test shows the guest's logs): %s", first)
	}
	return &env
}

// needPlugin also skips while the plugin cannot create sandboxes.
func needPlugin(t *testing.T) *suite {
	s := need(t)
	if s.plugin == "" {
		t.Skipf("realnode: plugin tests skipped: %s", s.pluginWhy)
	}
	return s
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// buildPlugin builds cmd/kubectl-agentkernel and checks that it has the
// commands these tests drive.
func buildPlugin(ctx context.Context) (path, why string) {
	dir, err := os.MkdirTemp("", "agentkernel-realnode-plugin-")
	if err != nil {
		return "", err.Error()
	}
	path = filepath.Join(dir, "kubectl-agentkernel")
	fail := func(why string) (string, string) {
		_ = os.RemoveAll(dir)
		return "", why
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "./cmd/kubectl-agentkernel")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fail(fmt.Sprintf("cannot build the plugin: %v: %s", err, out))
	}
	for _, sub := range []string{"create", "exec", "cp", "delete"} {
		// cobra prints the root help for an unknown command without failing:
		// make sure the help is the subcommand's.
		out, err := exec.CommandContext(ctx, path, sub, "--help").Output()
		if err != nil || !strings.Contains(string(out), "agentkernel "+sub) {
			return fail(fmt.Sprintf("the plugin has no %q command yet (merge main when it lands)", sub))
		}
	}
	return path, ""
}

// result of a command run.
type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
	// commandAt is when the plugin said it starts the command (run's
	// "running:" progress line), since the start; 0 if it never did.
	commandAt time.Duration
}

// stampedBuffer keeps what is written to it and notes when "running: "
// first arrived. Not an embedded bytes.Buffer: io.Copy would use its
// ReadFrom and never call Write.
type stampedBuffer struct {
	buf bytes.Buffer
	t0  time.Time
	at  time.Duration
}

func (b *stampedBuffer) Write(p []byte) (int, error) {
	n, err := b.buf.Write(p)
	if b.at == 0 && bytes.Contains(b.buf.Bytes(), []byte("running: ")) {
		b.at = time.Since(b.t0)
	}
	return n, err
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\nstdout: %s\nstderr: %s", r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

func run(ctx context.Context, stdin string, name string, args ...string) result {
	return runEnv(ctx, nil, stdin, name, args...)
}

// runEnv is run with env added to this process's environment.
func runEnv(ctx context.Context, env []string, stdin string, name string, args ...string) result {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	errb := &stampedBuffer{}
	cmd.Stdout, cmd.Stderr = &out, errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	t0 := time.Now()
	errb.t0 = t0
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.buf.String(), took: time.Since(t0), commandAt: errb.at}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		r.code = -1
		r.stderr += err.Error()
	}
	return r
}

func (s *suite) kubectlRun(ctx context.Context, stdin string, args ...string) result {
	return run(ctx, stdin, s.kubectl, append([]string{"--kubeconfig", s.cluster.AdminKubeconfig}, args...)...)
}

func (s *suite) pluginRun(ctx context.Context, stdin string, args ...string) result {
	return run(ctx, stdin, s.plugin, append([]string{"--kubeconfig", s.cluster.AdminKubeconfig}, args...)...)
}

// pluginRunEnv is pluginRun with env added to the plugin's environment
// (credentials a preset takes from the user's).
func (s *suite) pluginRunEnv(ctx context.Context, env []string, args ...string) result {
	return runEnv(ctx, env, "", s.plugin, append([]string{"--kubeconfig", s.cluster.AdminKubeconfig}, args...)...)
}

func record(what string, d time.Duration) {
	timeMu.Lock()
	defer timeMu.Unlock()
	timings[what] = append(timings[what], d)
}

func printTimings() {
	timeMu.Lock()
	defer timeMu.Unlock()
	keys := make([]string, 0, len(timings))
	for k := range timings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("realnode timings (this run):\n")
	for _, k := range keys {
		ds := timings[k]
		parts := make([]string, len(ds))
		for i, d := range ds {
			parts[i] = d.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "  %-45s %s\n", k, strings.Join(parts, " "))
	}
	fmt.Fprint(os.Stderr, b.String())
	if env.node != nil {
		_ = os.WriteFile(filepath.Join(env.node.Dir, "timings.txt"), []byte(b.String()), 0o644)
	}
}

func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %s: %w", timeout, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
