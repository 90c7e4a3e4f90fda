package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// claimedAs returns the Pods (from the recorded events) that ever carried
// the sandbox label name.
func (e *podEvents) claimedAs(name string) map[types.UID]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[types.UID]string{}
	for _, p := range e.pods {
		if p.Labels[sandbox.LabelSandbox] == name {
			out[p.UID] = p.Name
		}
	}
	return out
}

// wantRunError: run's failure of the plugin, exit 125, with an error line
// saying want after the progress lines.
func wantRunError(t *testing.T, r result, want string) {
	t.Helper()
	for _, line := range strings.Split(r.stderr, "\n") {
		if r.code == 125 && strings.HasPrefix(line, "error: ") && strings.Contains(line, want) {
			return
		}
	}
	t.Fatalf("want exit 125 and an error line saying %q:\n%s", want, r)
}

func onlyReadyMember(t *testing.T, ns, pool string) corev1.Pod {
	t.Helper()
	var ready []corev1.Pod
	eventually(t, 2*time.Minute, "pool "+pool+" to have one ready member", func() bool {
		ready, _ = warmMembers(t, ns, pool)
		return len(ready) == 1
	})
	return ready[0]
}

// run --pool claims the pool's warm member: the run's copies, command,
// environment and secret all reach it, the sandbox it deletes is that
// member, and the pool has its replacement when run returns.
func TestRunPoolClaimsWarm(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	events := recordPodEvents(t, ns)
	mustPlugin(t, "", "pool", "create", "warm", "--size", "1", "-n", ns)
	member := onlyReadyMember(t, ns, "warm")

	const secret = "sk-run-pool-'secret' $x"
	t.Setenv("E2E_RUN_POOL_KEY", secret)
	repo := writeTree(t, map[string]string{"a.txt": "from the repo\n"})
	in := workPath(ns, "repo")
	out := t.TempDir()
	r := plugin(t, "", "run", "demo", "--pool", "warm", "-n", ns, "--secret-env", "E2E_RUN_POOL_KEY", "--env", "MODE=pooled",
		"--copy-in", repo+":"+in, "--copy-out", in+":"+out, "-w", in,
		"--", "sh", "-c", `{ printf '%s|%s\n' "$E2E_RUN_POOL_KEY" "$MODE"; cat a.txt; } > result.txt; echo ran`)
	if r.code != 0 {
		t.Fatalf("run --pool:\n%s", r)
	}
	if r.stdout != "ran\n" {
		t.Fatalf("stdout is more (or less) than the command's output: %q", r.stdout)
	}
	for _, step := range []string{"claiming sandbox/demo from pool warm", "sandbox/demo: claimed warm from pool warm", "running: sh -c", "deleting sandbox/demo"} {
		if !strings.Contains(r.stderr, step) {
			t.Errorf("stderr lacks %q:\n%s", step, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "sk-run-pool") {
		t.Fatalf("the secret is on stderr:\n%s", r.stderr)
	}
	got, err := os.ReadFile(filepath.Join(out, "repo", "result.txt"))
	if err != nil || string(got) != secret+"|pooled\nfrom the repo\n" {
		t.Fatalf("copied out: %q %v", got, err)
	}
	// The sandbox was the pool's member, under its generated name.
	claimed := events.claimedAs("demo")
	if len(claimed) != 1 || claimed[member.UID] != member.Name || !strings.HasPrefix(member.Name, sandbox.PoolMemberPrefix("warm")) {
		t.Fatalf("sandbox demo was %v, want the warm member %s", claimed, member.Name)
	}
	// Gone, with the claim's Secret; the pool has its replacement already.
	if _, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), member.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the claimed member is still there after run returned: %v", err)
	}
	if _, all := warmMembers(t, ns, "warm"); len(all) != 1 || all[0].UID == member.UID {
		t.Fatalf("the pool has %d members when run returned, want its replacement", len(all))
	}
	eventually(t, time.Minute, "the claim's Secret removed with its Pod", func() bool {
		_, err := env.cs.CoreV1().Secrets(ns).Get(context.Background(), member.Name+"-env", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if left := sandboxPods(t, ns); len(left) != 0 {
		t.Fatalf("sandboxes left: %v", left)
	}

	// -q: nothing but the command's output, warm or not.
	r = plugin(t, "", "run", "-q", "--pool", "warm", "-n", ns, "--", "echo", "quiet")
	if r.code != 0 || r.stdout != "quiet\n" || r.stderr != "" {
		t.Fatalf("run -q --pool:\n%s", r)
	}
	mustPlugin(t, "", "pool", "delete", "warm", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}

// run --pool --agent on a pool made with pool create --agent (which needs
// none of the preset's credentials): each member runs the preset's install
// step as its PID 1 starts, before it is ready, so the claim does not run
// it; the credential comes with the claim. A cold run --agent installs over
// exec, as before. The simulated node runs no container, only execs: what
// it shows is that the API server admits the member (Pod Security
// restricted, no admission change: the startup probe as stored compares
// equal to the one asked for) and that the claim never runs the install —
// the install's marker is written only by an exec. A member whose install
// failed (the kubelet's report, played here) is not claimed, and pool list
// says why.
func TestRunPoolAgentInstalledWhileWarm(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	work := workPath(ns, "tool")
	presets := filepath.Join(t.TempDir(), "agents.yaml")
	const install = "mkdir -p WORK && echo installed >> WORK/marker"
	writeFiles(t, filepath.Dir(presets), map[string]string{"agents.yaml": `agents:
  e2etool:
    description: an agent whose install step leaves a mark
    image: docker.io/library/busybox:1.37.0
    install: ` + strings.ReplaceAll(install, "WORK", work) + `
    command: [sh, -c, 'mkdir -p ` + work + ` && printf %s "$E2E_TOOL_KEY" > ` + work + `/key']
    credentials:
      required: [E2E_TOOL_KEY]
`})
	mustPlugin(t, "", "pool", "create", "tools", "--agent", "e2etool", "--agents-file", presets, "--size", "1", "-n", ns)
	member := onlyReadyMember(t, ns, "tools")
	if got, ok := sandbox.WarmInstalled(&member); !ok || got != strings.ReplaceAll(install, "WORK", work) {
		t.Fatalf("the member as stored does not install while warm: %q %v\n%+v", got, ok, member.Spec.Containers[0])
	}

	const secret = "sk-e2e-tool-key"
	t.Setenv("E2E_TOOL_KEY", secret)
	out := t.TempDir()
	r := plugin(t, "", "run", "--pool", "tools", "--agent", "e2etool", "--agents-file", presets, "-n", ns, "--copy-out", work+":"+out)
	if r.code != 0 {
		t.Fatalf("run --pool --agent:\n%s", r)
	}
	if !strings.Contains(r.stderr, "claimed warm from pool tools") || !strings.Contains(r.stderr, "e2etool was installed in sandbox/") || strings.Contains(r.stderr, "installing e2etool") {
		t.Errorf("the warm claim's steps:\n%s", r.stderr)
	}
	if got, err := os.ReadFile(filepath.Join(out, "tool", "key")); err != nil || string(got) != secret {
		t.Errorf("key: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(out, "tool", "marker")); !os.IsNotExist(err) {
		t.Errorf("the claim ran the install step (its marker is there): %v", err)
	}

	// Cold, the install runs over exec, once.
	out = t.TempDir()
	r = plugin(t, "", "run", "--agent", "e2etool", "--agents-file", presets, "-n", ns, "--copy-out", work+":"+out)
	if r.code != 0 || !strings.Contains(r.stderr, "installing e2etool") {
		t.Fatalf("cold run --agent:\n%s", r)
	}
	if got, err := os.ReadFile(filepath.Join(out, "tool", "marker")); err != nil || string(got) != "installed\n" {
		t.Errorf("cold marker: %q %v", got, err)
	}

	// The replacement's install fails, as the kubelet reports it: it is not
	// claimed, pool list says why, and the claim goes cold.
	failed := onlyReadyMember(t, ns, "tools")
	failed.Status.Phase = corev1.PodFailed
	failed.Status.Conditions = nil
	failed.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: sandbox.ContainerName, Image: failed.Spec.Containers[0].Image, ImageID: "e2e",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error",
			Message: sandbox.InstallFailedPrefix + " exit code 1 (...):\nnpm ERR! 404 e2etool is not in this registry"}}}}
	if _, err := env.cs.CoreV1().Pods(ns).UpdateStatus(context.Background(), &failed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the failed member seen as failed", func() bool {
		p, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), failed.Name, metav1.GetOptions{})
		return err == nil && sandbox.InstallFailure(p) != ""
	})
	const why = "InstallFailed: exit code 1 (...): npm ERR! 404 e2etool is not in this registry"
	r = plugin(t, "", "run", "--pool", "tools", "--agent", "e2etool", "--agents-file", presets, "-n", ns, "--", "true")
	if r.code != 0 || !strings.Contains(r.stderr, `cold: pool "tools" has no ready member (0 starting: `+why+`)`) || !strings.Contains(r.stderr, "installing e2etool") {
		t.Fatalf("run --pool with a failed member:\n%s", r)
	}
	if p, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), failed.Name, metav1.GetOptions{}); err != nil || p.Labels[sandbox.LabelSandbox] != "" {
		t.Fatalf("the failed member was claimed or removed by a claim: %v", err)
	}
	if l := mustPlugin(t, "", "pool", "list", "-n", ns, "--no-reconcile"); !strings.Contains(l.stdout, why) {
		t.Errorf("pool list --no-reconcile does not say why:\n%s", l)
	}
	// pool list tops the pool up: it says why once more, and replaces it.
	if l := mustPlugin(t, "", "pool", "list", "-n", ns); !strings.Contains(l.stdout, why) {
		t.Errorf("pool list does not say why:\n%s", l)
	}
	if m := onlyReadyMember(t, ns, "tools"); m.UID == failed.UID {
		t.Fatal("the failed member was not replaced")
	}

	// A pool made without the agent is refused for it: 125, nothing taken.
	mustPlugin(t, "", "pool", "create", "plain", "--size", "1", "-n", ns)
	plain := onlyReadyMember(t, ns, "plain")
	r = plugin(t, "", "run", "--pool", "plain", "--agent", "e2etool", "--agents-file", presets, "-n", ns)
	wantRunError(t, r, `pool "plain" in namespace "`+ns+`" does not match this claim: --agent: the pool has none, the claim asks for "e2etool" (a pool for it: kubectl agentkernel pool create NAME --agent e2etool --size N)`)
	if ready := onlyReadyMember(t, ns, "plain"); ready.UID != plain.UID {
		t.Fatal("a refused run took the member")
	}
	mustPlugin(t, "", "pool", "delete", "tools", "plain", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}

// What run --pool cannot do fails with a clear message, exit 125, before
// anything is made or claimed.
func TestRunPoolErrors(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	events := recordPodEvents(t, ns)
	r := plugin(t, "", "run", "--pool", "nope", "-n", ns, "--", "true")
	wantRunError(t, r, `pool "nope" not found in namespace "`+ns+`"`)
	assertNothingLeft(t, ns)

	mustPlugin(t, "", "pool", "create", "ok", "--size", "1", "-n", ns)
	member := onlyReadyMember(t, ns, "ok")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"other image": {[]string{"--image", "docker.io/library/alpine:3"}, `pool "ok" in namespace "` + ns + `" does not match this claim: --image: the pool has "docker.io/library/busybox:1.37.0", the claim asks for "docker.io/library/alpine:3"`},
		"detach":      {[]string{"--detach"}, "--detach cannot be used with --pool"},
		"allow-host":  {[]string{"--allow-host", "example.com"}, "--allow-host cannot be used with --pool"},
	} {
		t.Run(name, func(t *testing.T) {
			wantRunError(t, plugin(t, "", append(append([]string{"run", "--pool", "ok", "-n", ns}, tc.args...), "--", "true")...), tc.want)
		})
	}
	if ready := onlyReadyMember(t, ns, "ok"); ready.UID != member.UID || len(sandboxPods(t, ns)) != 0 {
		t.Fatal("a refused run took a member or made a sandbox")
	}
	if n := len(events.ungatedPods()); n != 1 {
		t.Errorf("%d pods were started; only the pool's member should have been", n)
	}
	mustPlugin(t, "", "pool", "delete", "ok", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}

// create_sandbox with pool, through the MCP Inspector: a warm member is
// claimed with the server's secret, later sessions reach it by --adopt
// and see the secret, a session's own claim is deleted when it ends, and a
// pool more open than the server is refused.
func TestMCPInspectorPool(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	events := recordPodEvents(t, ns)
	const secret = "sk-e2e-mcp-pool-7001"
	srv := newInspectorServer(t, ns, "--secret-env", "E2E_MCP_POOL_SECRET")
	srv.env["E2E_MCP_POOL_SECRET"] = secret
	mustPlugin(t, "", "pool", "create", "fast", "--size", "1", "-n", ns)
	member := onlyReadyMember(t, ns, "fast")

	created := srv.tool([]string{"--keep"}, "create_sandbox", "name=quick", "pool=fast", "ttl=10m")
	if created["name"] != "quick" || created["usable"] != true || created["created_by_this_server"] != true {
		t.Fatalf("create_sandbox from a pool: %v", created)
	}
	if claimed := events.claimedAs("quick"); len(claimed) != 1 || claimed[member.UID] != member.Name || !strings.HasPrefix(member.Name, sandbox.PoolMemberPrefix("fast")) {
		t.Fatalf("sandbox quick is %v, want the warm member %s", claimed, member.Name)
	}
	pod, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), member.Name, metav1.GetOptions{})
	if err != nil || pod.Spec.ActiveDeadlineSeconds == nil || *pod.Spec.ActiveDeadlineSeconds < 600 {
		t.Fatalf("the claimed member's TTL: %v %v", pod, err)
	}
	// The server waited for the refill before it stopped.
	if _, all := warmMembers(t, ns, "fast"); len(all) != 1 || all[0].UID == member.UID {
		t.Fatalf("the pool has %d members after the session, want its replacement", len(all))
	}
	// The claim brought the server's secret: its digest, so that the value
	// is in no argument list and no tool result.
	ran := srv.tool([]string{"--adopt", "quick"}, "exec", "sandbox=quick", `command=["sh","-c","printf %s \"$E2E_MCP_POOL_SECRET\" | sha256sum"]`)
	if sum := sha256.Sum256([]byte(secret)); ran["exit_code"] != 0.0 || !strings.HasPrefix(fmt.Sprint(ran["stdout"]), hex.EncodeToString(sum[:])) {
		t.Fatalf("exec in the claimed sandbox does not see the claim's secret: %v", ran)
	}
	if d := srv.tool([]string{"--adopt", "quick"}, "delete_sandbox", "sandbox=quick"); d["deleted"] != "quick" {
		t.Fatalf("delete_sandbox: %v", d)
	}

	// A session's own claim goes when the session does.
	onlyReadyMember(t, ns, "fast")
	if c := srv.tool(nil, "create_sandbox", "name=brief", "pool=fast"); c["usable"] != true {
		t.Fatalf("create_sandbox: %v", c)
	}
	if len(events.claimedAs("brief")) != 1 {
		t.Fatal("sandbox brief was not claimed")
	}
	eventually(t, time.Minute, "the session's claimed sandbox deleted", func() bool { return len(sandboxPods(t, ns)) == 0 })

	// Wider than the server (restrictive by default): refused, nothing taken.
	mustPlugin(t, "", "pool", "create", "open", "--size", "1", "--profile", "permissive", "-n", ns)
	open := onlyReadyMember(t, ns, "open")
	out := srv.call(nil, "tools/call", "--tool-name", "create_sandbox", "--tool-arg", "name=wide", "--tool-arg", "pool=open")
	var res struct {
		IsError bool
		Content []struct{ Text string }
	}
	if err := json.Unmarshal(out, &res); err != nil || !res.IsError || len(res.Content) == 0 ||
		!strings.Contains(res.Content[0].Text, `its network "open" is more open than this server's "none"`) {
		t.Fatalf("create_sandbox from a pool wider than the server: %s", out)
	}
	if ready := onlyReadyMember(t, ns, "open"); ready.UID != open.UID {
		t.Fatal("a refused claim took the member")
	}

	log, err := os.ReadFile(srv.log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `msg="claimed warm from pool" sandbox=quick pool=fast`) {
		t.Errorf("the server log does not say the claim was warm:\n%s", log)
	}
	if strings.Contains(string(log), secret) || strings.Contains(srv.transcript.String(), secret) {
		t.Fatalf("the secret is in a tool result or the server's log")
	}
	mustPlugin(t, "", "pool", "delete", "fast", "open", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}

// Ctrl-C while run --pool --pool-wait waits for a member, and while the
// command runs in a claimed sandbox: exit 130, the claimed sandbox
// deleted, the pool whole, nothing else left.
func TestRunPoolInterrupted(t *testing.T) {
	requireSimulated(t) // the simulated node never readies pods labelled e2e.agentkernel/hold
	ns := newNamespace(t)
	mustPlugin(t, "", "pool", "create", "held", "--size", "1", "-n", ns, "--label", localcluster.HoldLabel+"=true", "--wait=false")
	mustPlugin(t, "", "pool", "create", "warm", "--size", "1", "-n", ns)
	member := onlyReadyMember(t, ns, "warm")
	events := recordPodEvents(t, ns)
	for _, tc := range []struct {
		name, until string
		args        []string
	}{
		{"waiting for a member", "claiming sandbox/", []string{"--pool", "held", "--pool-wait", "--", "echo", "CMD-RAN"}},
		{"in the command", "CMD-STARTED", []string{"--pool", "warm", "--", "sh", "-c", "echo CMD-STARTED; sleep 300"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startPlugin(t, append([]string{"run", "interrupted", "-n", ns}, tc.args...)...)
			s.waitFor(t, tc.until)
			if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			code := s.exit(t)
			out, errOut := s.output()
			if code != 130 || strings.Contains(out, "CMD-RAN") {
				t.Fatalf("exit %d, want 130\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if left := sandboxPods(t, ns); len(left) != 0 {
				t.Fatalf("sandboxes left: %v", left)
			}
		})
	}
	if claimed := events.claimedAs("interrupted"); len(claimed) != 1 || claimed[member.UID] == "" {
		t.Fatalf("the interrupted command ran in %v, want the warm member %s", claimed, member.Name)
	}
	for _, pool := range []string{"held", "warm"} {
		if _, all := warmMembers(t, ns, pool); len(all) != 1 {
			t.Errorf("pool %s has %d members after the interrupted runs, want 1", pool, len(all))
		}
	}
	mustPlugin(t, "", "pool", "delete", "held", "warm", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}
