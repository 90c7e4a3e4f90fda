package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// What the rows of rbac_test.go need beyond running a command to its end:
// drivers for commands that do not end by themselves or speak a protocol,
// and the setups and checks of pools, gc and the egress proxy.

// kwokLog is what the simulated node serves as every container's log (and
// replays on attach).
const kwokLog = "kwok: this container is simulated"

// background is a plugin process the test drives.
type background struct {
	cmd    *exec.Cmd
	stdout testexec.SyncBuffer
	stderr testexec.SyncBuffer
	done   chan struct{}
	code   int
}

func startAs(t *testing.T, kubeconfig string, args []string) *background {
	t.Helper()
	b := &background{done: make(chan struct{})}
	b.cmd = exec.Command(env.binary, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	b.cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := b.cmd.Wait()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			b.code = exitErr.ExitCode()
		}
		close(b.done)
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

func (b *background) result() result {
	return result{stdout: b.stdout.String(), stderr: b.stderr.String(), code: b.code}
}

// until waits until stdout matches re (true) or the process ended (false).
func (b *background) until(t *testing.T, re *regexp.Regexp) ([]string, bool) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		if m := re.FindStringSubmatch(b.stdout.String()); m != nil {
			return m, true
		}
		select {
		case <-b.done:
			m := re.FindStringSubmatch(b.stdout.String())
			return m, m != nil
		case <-deadline:
			t.Fatalf("the plugin printed no %s within 2 minutes:\n%s", re, b.result())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// interrupt sends Ctrl-C and says whether the process ended as it should
// (130); the result then has exit 0.
func (b *background) interrupt(t *testing.T) result {
	t.Helper()
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the plugin did not end on Ctrl-C:\n%s", b.result())
	}
	r := b.result()
	if r.code == 130 {
		r.code = 0
	} else {
		r.stderr += fmt.Sprintf("\n(exit %d after Ctrl-C, not 130)", r.code)
		if r.code == 0 {
			r.code = 1
		}
	}
	return r
}

// attached: attach streams until Ctrl-C, and on the simulated node shows
// nothing (it replays only lines its log file gains). It passes when the
// API server holds the attach open — authorized, admitted and connected to
// the node, as its long-running request gauge counts it — and Ctrl-C then
// ends it with 130. A refused attach ends by itself first.
func attached(t *testing.T, kubeconfig string, args []string) result {
	before := openAttaches(t)
	b := startAs(t, kubeconfig, args)
	deadline := time.After(2 * time.Minute)
	for openAttaches(t) <= before {
		select {
		case <-b.done:
			return b.result()
		case <-deadline:
			t.Fatalf("the API server held no attach within 2 minutes:\n%s", b.result())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return b.interrupt(t)
}

// openAttaches is how many pods/attach requests the API server holds open.
func openAttaches(t *testing.T) int {
	t.Helper()
	raw, err := env.cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("reading the API server's metrics: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_longrunning_requests{") || !strings.Contains(line, `resource="pods"`) || !strings.Contains(line, `subresource="attach"`) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		n += int(v)
	}
	return n
}

// portForwardEcho: a line sent to the forwarded port comes back (the
// simulated node forwards every port to an echo service).
func portForwardEcho(t *testing.T, kubeconfig string, args []string) result {
	b := startAs(t, kubeconfig, args)
	m, ok := b.until(t, regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`))
	if !ok {
		return b.result()
	}
	conn, err := net.Dial("tcp", "127.0.0.1:"+m[1])
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("ping through the sandbox\n"))
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	echo, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	r := b.interrupt(t)
	if echo != "ping through the sandbox\n" {
		r.code = 1
		r.stderr += fmt.Sprintf("\n(no echo through the forwarded port: %q %v)", echo, err)
	}
	return r
}

// mcpTools drives `kubectl agentkernel mcp` with the MCP Go SDK's client
// over stdio, as an agent would: create a sandbox, exec in it, list, delete.
// A tool error ends the run: its text is the result's stderr.
func mcpTools(name string) func(*testing.T, string, []string) result {
	return func(t *testing.T, kubeconfig string, args []string) result {
		cmd := exec.Command(env.binary, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
		var serverLog testexec.SyncBuffer
		cmd.Stderr = &serverLog
		stdin, stdout := startOverStdio(t, cmd)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		defer func() {
			select {
			case <-exited:
			default:
				_ = cmd.Process.Kill()
				<-exited
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		session, err := sdk.NewClient(&sdk.Implementation{Name: "e2e-rbac"}, nil).Connect(ctx, &sdk.IOTransport{Reader: stdout, Writer: stdin}, nil)
		if err != nil {
			t.Fatalf("connecting to the MCP server: %v\n%s", err, serverLog.String())
		}
		var transcript bytes.Buffer
		var toolErr string
		for _, call := range []struct {
			tool string
			args map[string]any
		}{
			{"create_sandbox", map[string]any{"name": name}},
			{"exec", map[string]any{"sandbox": name, "command": []string{"true"}}},
			{"list_sandboxes", map[string]any{}},
			{"delete_sandbox", map[string]any{"sandbox": name}},
		} {
			res, err := session.CallTool(ctx, &sdk.CallToolParams{Name: call.tool, Arguments: call.args})
			if err != nil {
				t.Fatalf("%s: %v\n%s", call.tool, err, serverLog.String())
			}
			b, _ := json.Marshal(res)
			fmt.Fprintf(&transcript, "%s: %s\n", call.tool, b)
			if res.IsError {
				for _, c := range res.Content {
					if text, ok := c.(*sdk.TextContent); ok {
						toolErr += call.tool + ": " + text.Text + "\n"
					}
				}
				break
			}
		}
		_ = session.Close()
		select {
		case <-exited:
		case <-time.After(2 * time.Minute):
			t.Fatalf("the MCP server did not end when its client left:\n%s", serverLog.String())
		}
		r := result{stdout: transcript.String(), stderr: toolErr + serverLog.String()}
		if toolErr != "" {
			r.code = 1
		}
		return r
	}
}

// mcpNamesWhatItLacks: in a namespace where the user has nothing, the
// first tool call is refused with a tool error that names the permission
// and says how to get it.
func mcpNamesWhatItLacks(ns string, r result) error {
	first, _, _ := strings.Cut(r.stderr, "\n")
	if !strings.HasPrefix(first, "create_sandbox: ") || !strings.Contains(first, `cannot create resource "pods"`) ||
		!strings.Contains(first, "kubectl agentkernel rbac -n "+ns) {
		return fmt.Errorf("the tool error does not name the permission (%q) and the rbac command", `cannot create resource "pods"`)
	}
	return nil
}

// Checks.

func printed(want string) func(string, rbacRun) error {
	return func(_ string, r rbacRun) error {
		if !strings.Contains(r.stdout, want) {
			return fmt.Errorf("stdout lacks %q", want)
		}
		return nil
	}
}

// copiedOut: the file copied in and out again is back, intact.
func copiedOut(name string) func(string, rbacRun) error {
	return func(_ string, r rbacRun) error {
		name := strings.ReplaceAll(name, "{run}", strconv.Itoa(r.n))
		b, err := os.ReadFile(filepath.Join(r.dir, name))
		if err != nil || string(b) != "from the test\n" {
			return fmt.Errorf("copied out: %q, %v", b, err)
		}
		return nil
	}
}

func installedNothing(_ string, r rbacRun) error {
	if strings.Contains(r.stderr, "egress proxy installed") {
		return errors.New("the user's create installed an egress proxy")
	}
	return nil
}

func poolGone(poolName string) func(string, rbacRun) error {
	return func(ns string, _ rbacRun) error {
		ctx := context.Background()
		var left string
		for range 300 {
			_, err := env.cs.CoreV1().PodTemplates(ns).Get(ctx, pool.PoolTemplateName(poolName), metav1.GetOptions{})
			pods, lerr := env.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sandbox.LabelPool + "=" + poolName + ",!" + sandbox.LabelSandbox})
			if apierrors.IsNotFound(err) && lerr == nil && len(pods.Items) == 0 {
				return nil
			}
			left = fmt.Sprintf("podtemplate: %v; members: %d", err, len(pods.Items))
			time.Sleep(100 * time.Millisecond)
		}
		return fmt.Errorf("pool %s is not gone: %s", poolName, left)
	}
}

// Setups, as admin.

func poolAbsent(poolName string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		ctx := context.Background()
		del := metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}
		_ = env.cs.CoreV1().PodTemplates(ns).Delete(ctx, pool.PoolTemplateName(poolName), del)
		_ = env.cs.CoreV1().Pods(ns).DeleteCollection(ctx, del, metav1.ListOptions{LabelSelector: sandbox.LabelPool + "=" + poolName})
		eventually(t, time.Minute, "pool "+poolName+" gone", func() bool {
			_, err := env.cs.CoreV1().PodTemplates(ns).Get(ctx, pool.PoolTemplateName(poolName), metav1.GetOptions{})
			pods, lerr := env.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sandbox.LabelPool + "=" + poolName})
			return apierrors.IsNotFound(err) && lerr == nil && len(pods.Items) == 0
		})
	}
}

func poolExists(t *testing.T, ns, poolName string) bool {
	t.Helper()
	_, err := env.cs.CoreV1().PodTemplates(ns).Get(context.Background(), pool.PoolTemplateName(poolName), metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// poolReady makes sure the pool exists and has a ready warm member.
func poolReady(pool string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		if !poolExists(t, ns, pool) {
			mustPlugin(t, "", "pool", "create", pool, "--size", "1", "-n", ns)
		}
		eventually(t, 2*time.Minute, "a ready member of pool "+pool, func() bool {
			ready, _ := warmMembers(t, ns, pool)
			return len(ready) > 0
		})
	}
}

// poolOfSize makes sure the pool exists with size members.
func poolOfSize(pool string, size int) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		if !poolExists(t, ns, pool) {
			mustPlugin(t, "", "pool", "create", pool, "--size", strconv.Itoa(size), "-n", ns)
			return
		}
		mustPlugin(t, "", "pool", "scale", pool, "--size", strconv.Itoa(size), "-n", ns)
	}
}

// claimAbsent removes the sandbox a claim made (a pool member keeps its
// generated name: found by label).
func claimAbsent(name string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		ctx := context.Background()
		sel := metav1.ListOptions{LabelSelector: sandbox.LabelSandbox + "=" + name}
		_ = env.cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, sel)
		eventually(t, time.Minute, "sandbox "+name+" gone", func() bool {
			pods, err := env.cs.CoreV1().Pods(ns).List(ctx, sel)
			return err == nil && len(pods.Items) == 0
		})
	}
}

// withMain makes sure a sandbox with a main process runs.
func withMain(name string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		if p, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), sandbox.PodName(name), metav1.GetOptions{}); err == nil && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			return
		}
		absent(name)(t, ns)
		mustPlugin(t, "", "create", name, "-n", ns, "--command", "--", "sleep", "3600")
	}
}

// orphans leaves what gc is for: a sandbox's Secret and NetworkPolicy whose
// Pod is gone. (The cluster's garbage collector may remove them first; gc
// must then find nothing, and still pass.)
func orphans(name string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		ctx := context.Background()
		labels := map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelSandbox: name}
		owner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: sandbox.PodName(name), UID: uuid.NewUUID(), Controller: ptr.To(true)}}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: sandbox.SecretName(name), Labels: labels, OwnerReferences: owner}}
		if _, err := env.cs.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: sandbox.PodName(name), Labels: labels, OwnerReferences: owner},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: labels}}}
		if _, err := env.cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// egressInstalled: an admin installed the namespace's egress proxy.
func egressInstalled(t *testing.T, ns string) {
	t.Helper()
	if _, err := env.cs.CoreV1().Services(ns).Get(context.Background(), fence.ProxyName, metav1.GetOptions{}); err == nil {
		return
	}
	mustPlugin(t, "", "egress", "install", "-n", ns, "--api-server", "10.0.0.1:443")
}

// egress install and uninstall are an admin's: a user with the plugin's
// Role is refused, in one line that says so and names the Role it takes
// (and nothing is left of the attempt); with that Role as well, both pass.
func TestRBACEgressInstallIsAnAdmins(t *testing.T) {
	requireUsers(t)
	requireSimulated(t)
	ns := newNamespace(t)
	u := newUser(t, "e2e-rbac-egress")
	applyRBAC(t, "-n", ns, "--user", u.name)
	for _, p := range rbac.Of(rbac.Namespace) {
		waitForAccess(t, u, ns, p, true)
	}
	r := pluginAs(t, u.kubeconfig, "", "egress", "install", "-n", ns, "--api-server", "10.0.0.1:443")
	wantError(t, r, "installing or removing the namespace's egress proxy is an admin's work")
	for _, want := range []string{`cannot get resource "serviceaccounts"`, "kubectl agentkernel rbac -n " + ns + " --egress-admin"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, r)
		}
	}
	if strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("not one error line:\n%s", r)
	}
	if _, err := env.cs.NetworkingV1().NetworkPolicies(ns).Get(context.Background(), fence.ProxyPolicyName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused install left its NetworkPolicy: %v", err)
	}
	assertNothingLeft(t, ns)
	r = pluginAs(t, u.kubeconfig, "", "egress", "uninstall", "-n", ns)
	wantError(t, r, "installing or removing the namespace's egress proxy is an admin's work")
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "--egress-admin") {
		t.Errorf("egress uninstall: not one line naming the Role it takes:\n%s", r)
	}

	applyRBAC(t, "-n", ns, "--user", u.name, "--egress-admin")
	for _, p := range rbac.EgressAdmin {
		waitForAccess(t, u, ns, p, true)
	}
	if r := pluginAs(t, u.kubeconfig, "", "egress", "install", "-n", ns, "--api-server", "10.0.0.1:443"); r.code != 0 {
		t.Fatalf("egress install with the --egress-admin Role:\n%s", r)
	}
	if r := pluginAs(t, u.kubeconfig, "", "egress", "status", "-n", ns, "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"installed": true`) {
		t.Fatalf("egress status:\n%s", r)
	}
	r = pluginAs(t, u.kubeconfig, "", "egress", "uninstall", "-n", ns)
	if r.code != 0 || !strings.Contains(r.stdout, "deployment/"+fence.ProxyName+" deleted") {
		t.Fatalf("egress uninstall with the --egress-admin Role:\n%s", r)
	}
}
