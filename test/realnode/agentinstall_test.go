package realnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/test/agentmock"
)

// The presets claude and codex (pkg/agents/agents.yaml) on the real node,
// install step and all (issue 24): their image and an npm registry with the
// exact packages they name, both brought into the guest by build/build.sh,
// which reaches no registry:
//   - NodeImage is the stand-in for docker.io/library/node:22-bookworm
//     (build.sh's agent-image step says what differs);
//   - the registry is test/realnode/cmd/npmregistry serving the packages
//     test/agents/npm/package-lock.json pins (the CLIs and their linux-x64
//     platform packages, fetched once on the host with npm), from the disk
//     by a hostPath in a namespace of its own;
//   - the sandbox reaches it only through its namespace's egress proxy, by
//     --allow-host, with the proxy variables the plugin sets; npm is told
//     where the registry is by --env NPM_CONFIG_REGISTRY, as a user with a
//     private mirror does. The proxy resolves the mirror's name
//     (mirrorHost, a hostAlias in its Pod) as the egress tests do theirs.
// So the preset's install line runs exactly as written: npm install
// --global into $HOME/.npm-global on the sandbox's emptyDir, the
// platform package with the native binary, Claude Code's postinstall.

// NodeImage is the presets' image; build/build.sh makes its stand-in.
const NodeImage = "docker.io/library/node:22-bookworm"

const (
	mirrorHost = "registry.mirror.test"
	mirrorPort = "8080"
	// The scripted model API (test/agentmock), reached by this name only
	// through the proxy: the conversation on modelPort, a model that
	// answers every request with a 500 on modelFailPort.
	modelHost     = "model.agentmock.test"
	modelPort     = "8080"
	modelFailPort = "8081"
	// flowDir is where the repository is copied in: the agent works there.
	flowDir = "/workspace/repo"
	// mirrorNS holds the registry: its hostPath needs Pod Security
	// "privileged" (an unlabelled namespace).
	mirrorNS = "agentkernel-realnode-npm"
	// agentsNS holds the sandboxes and their proxy ("restricted", like the
	// suite's namespace, which the egress test installs its own proxy in).
	agentsNS = "agentkernel-agents"
	// installTimeout bounds one run with an install: under TCG npm
	// unpacks ~200 MB of native binary and the kubelet starts a Pod of a
	// 200 MB image.
	installTimeout = 20 * time.Minute
	// Expected versions: those of the presets' install lines.
	claudeVersion = "2.1.332"
	codexVersion  = "0.171.0"
)

// needAgentImages fails unless the guest imported the agents' archive,
// which it does at boot before it is ready (guest/init): an import beside
// the tests once froze the guest.
func (s *suite) needAgentImages(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(s.node.ConsoleLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "agent images imported") {
		t.Fatalf("the guest did not import %s at boot\n%s", NodeImage, s.node.Diagnostics())
	}
}

// startMirror runs the npm registry in the guest and returns its Pod's
// address and a function returning its log (one line per request).
func (s *suite) startMirror(ctx context.Context, t *testing.T) (string, func() string) {
	t.Helper()
	return s.startHostPathServer(ctx, t, "npm-mirror", "/var/lib/agentkernel/npm-mirror",
		"exec /srv/npmregistry -dir /srv -addr :"+mirrorPort,
		func(log string) bool { return strings.Contains(log, "serving") })
}

// startModel runs test/agentmock's scripted model API in the guest, twice:
// Claude Code's conversation in /workspace/repo on modelPort, and every
// request failing with a 500 on modelFailPort. It returns the Pod's
// address and its log (one line per request: step played, status, the
// client's User-Agent).
func (s *suite) startModel(ctx context.Context, t *testing.T) (string, func() string) {
	t.Helper()
	return s.startHostPathServer(ctx, t, "agentmock", "/var/lib/agentkernel/agentmock",
		"/srv/agentmock -listen :"+modelPort+" -claude-dir "+flowDir+" & "+
			"exec /srv/agentmock -listen :"+modelFailPort+" -fail-status 500 -fail-message 'Internal server error'",
		func(log string) bool { return strings.Count(log, "serving on") == 2 })
}

// startHostPathServer runs script in a Pod of mirrorNS with the guest's
// directory dir at /srv, until ready says its log shows it serving; it
// returns the Pod's address and a function returning its log.
func (s *suite) startHostPathServer(ctx context.Context, t *testing.T, name, dir, script string, ready func(log string) bool) (string, func() string) {
	t.Helper()
	pod := hardenedPod(name, SandboxImage, script, nil)
	pod.Namespace = mirrorNS
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "srv", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: ptr.To(corev1.HostPathDirectory)},
	}})
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "srv", MountPath: "/srv", ReadOnly: true})
	pods := s.client.CoreV1().Pods(mirrorNS)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	logs := func() string {
		b, err := pods.GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(context.Background())
		if err != nil {
			return fmt.Sprintf("(no log: %v)", err)
		}
		return string(b)
	}
	var ip string
	if err := poll(ctx, podRunningTimeout, func() (bool, error) {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			return false, fmt.Errorf("%s ended: %s", name, statusLine(p))
		}
		ip = p.Status.PodIP
		return p.Status.Phase == corev1.PodRunning && ready(logs()), nil
	}); err != nil {
		t.Fatalf("%s did not start: %v\nits log: %s\n%s", name, err, logs(), s.node.Diagnostics())
	}
	return ip, logs
}

// TestAgentInstall: `run --agent claude` and `run --agent codex` on the
// real kubelet, each preset's install step exactly as written, through the
// egress proxy to the registry in the guest; and the same without the
// registry among the allowed hosts fails fast, saying what was refused.
func TestAgentInstall(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	s.needAgentImages(t)
	s.sdkNamespace(ctx, t, agentsNS)
	mirrorIP, mirrorLog := s.startMirror(ctx, t)
	modelIP, modelLog := s.startModel(ctx, t)
	proxy := s.installEgress(ctx, t, agentsNS, []corev1.HostAlias{
		{IP: mirrorIP, Hostnames: []string{mirrorHost}}, {IP: modelIP, Hostnames: []string{modelHost}}})
	registry := "http://" + mirrorHost + ":" + mirrorPort + "/"
	// The plugin names the proxy by its Service's cluster IP; the guest
	// has no Service data path (no kube-proxy, egress_test.go), so the
	// same four variables name the proxy Pod's address instead. npm reads
	// them as it would the plugin's.
	var proxyEnv []string
	for _, n := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		proxyEnv = append(proxyEnv, "--env", n+"=http://"+proxy.Status.PodIP+":3128")
	}

	// The presets ask for 2 CPUs and 4Gi; the guest has 2 CPUs and 3Gi
	// in all, shared with the proxy, the registry and the relay.
	small := append([]string{"--cpu", "500m", "--memory", "1536Mi"}, proxyEnv...)
	// A fake key: the presets require one of their credentials; the only
	// model here is the scripted one.
	env := []string{"ANTHROPIC_API_KEY=sk-ant-fake", "OPENAI_API_KEY=sk-fake"}

	// The image alone, for the install's share of the runs below.
	c, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	base := s.pluginRunEnv(c, env, append([]string{"run", "rn-node", "-n", agentsNS, "--image", NodeImage,
		"--allow-host", mirrorHost + ":" + mirrorPort, "--read-only"}, append(small, "--", "sh", "-c", "node --version && npm --version")...)...)
	if base.code != 0 || !strings.HasPrefix(base.stdout, "v22.") {
		t.Fatalf("node in the presets' image: %s\n%s", base, s.node.Diagnostics())
	}
	record("agents: run with the node image, no install (node --version)", base.took)
	t.Logf("the image: node %s", strings.ReplaceAll(strings.TrimSpace(base.stdout), "\n", ", npm "))

	// The whole flow with Claude Code: the repository copied in, the
	// agent's conversation with the scripted model (read, edit, run the
	// repository's test), the edited repository copied out, the agent's
	// exit status; and with a model that fails, the agent's failure and
	// its status, the repository still copied out. The install runs in
	// each, as for a user.
	t.Run("claude", func(t *testing.T) {
		r, out := s.claudeFlow(ctx, t, env, small, "rn-claude", modelPort, registry)
		if r.code != 0 {
			t.Fatalf("run --agent claude -- claude -p: %s\nmodel log:\n%s\nregistry log:\n%s\n%s", r, modelLog(), mirrorLog(), s.node.Diagnostics())
		}
		record("agents: run --agent claude (install + a 4-turn conversation)", r.took)
		t.Logf("run --agent claude took %s, the image alone %s (TCG)", r.took.Round(time.Second), base.took.Round(time.Second))
		if !strings.Contains(r.stdout, agentmock.FinalText) {
			t.Errorf("claude's output lacks the conversation's final text %q: %s", agentmock.FinalText, r)
		}
		if got := readGreeting(t, out); got != agentmock.NewGreeting {
			t.Errorf("the copied-out greeting.txt says %q, want %q: the agent's edit did not come back", got, agentmock.NewGreeting)
		}
		// Every step played, by the version the preset installed.
		log := modelLog()
		if !strings.Contains(log, "api=anthropic") || !strings.Contains(log, "step=3 status=200") {
			t.Errorf("the model did not play the conversation to its end:\n%s", log)
		}
		if !strings.Contains(log, "claude-cli/"+claudeVersion) {
			t.Errorf("no request from Claude Code %s:\n%s", claudeVersion, log)
		}
		if l := mirrorLog(); !strings.Contains(l, "/-/tarballs/anthropic-ai-claude-code-linux-x64-"+claudeVersion+".tgz → 200") {
			t.Errorf("the registry did not serve Claude Code's native binary:\n%s", l)
		}
		s.sandboxGoneIn(ctx, t, agentsNS, "rn-claude")
	})
	t.Run("claude, the model fails", func(t *testing.T) {
		r, out := s.claudeFlow(ctx, t, env, small, "rn-claude-fails", modelFailPort, registry)
		// Claude Code exits 1 on an API error; run exits with its status.
		if r.code != 1 {
			t.Fatalf("run with a failing model: want the agent's exit status 1: %s\nmodel log:\n%s\n%s", r, modelLog(), s.node.Diagnostics())
		}
		record("agents: run --agent claude, the model answers 500 (install + failure)", r.took)
		if !strings.Contains(r.stdout+r.stderr, "500") {
			t.Errorf("the user is not told of the model's 500: %s", r)
		}
		if got := readGreeting(t, out); got != agentmock.OldGreeting {
			t.Errorf("the copied-out greeting.txt says %q, want it untouched (%q)", got, agentmock.OldGreeting)
		}
		s.sandboxGoneIn(ctx, t, agentsNS, "rn-claude-fails")
	})

	for _, a := range []struct{ agent, cli, want, platformTarball string }{
		{"codex", "codex", "codex-cli " + codexVersion, "openai-codex-" + codexVersion + "-linux-x64.tgz"},
	} {
		t.Run(a.agent, func(t *testing.T) {
			c, cancel := context.WithTimeout(ctx, installTimeout)
			defer cancel()
			// The CLI's version, then where the command and its native
			// binary live: npm's global prefix on the $HOME emptyDir.
			script := a.cli + ` --version && readlink -f "$(command -v ` + a.cli + `)" && df -P "$HOME" | tail -1`
			r := s.pluginRunEnv(c, env, append([]string{"run", "rn-" + a.agent, "-n", agentsNS, "--agent", a.agent,
				"--allow-host", mirrorHost + ":" + mirrorPort,
				// A user's private mirror is set the same way.
				"--env", "NPM_CONFIG_REGISTRY=" + registry}, append(small, "--", "sh", "-c", script)...)...)
			if r.code != 0 {
				t.Fatalf("run --agent %s: %s\nregistry log:\n%s\n%s", a.agent, r, mirrorLog(), s.node.Diagnostics())
			}
			record("agents: run --agent "+a.agent+" (install + --version)", r.took)
			t.Logf("run --agent %s took %s, the image alone %s: the install about %s (TCG)", a.agent,
				r.took.Round(time.Second), base.took.Round(time.Second), (r.took - base.took).Round(time.Second))
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if len(lines) < 3 || strings.TrimSpace(lines[0]) != a.want {
				t.Fatalf("%s --version: want %q first: %s", a.cli, a.want, r)
			}
			if !strings.HasPrefix(lines[1], "/home/sandbox/.npm-global/") {
				t.Errorf("%s is not in npm's global prefix on $HOME: %s", a.cli, lines[1])
			}
			t.Logf("%s → %s; $HOME: %s", a.cli, lines[1], lines[2])
			// npm fetched the platform package (the native binary) from the
			// registry, by way of the proxy (the sandbox cannot reach the
			// registry's Pod itself).
			if l := mirrorLog(); !strings.Contains(l, "/-/tarballs/"+a.platformTarball+" → 200") {
				t.Errorf("the registry did not serve %s:\n%s", a.platformTarball, l)
			}
			s.sandboxGoneIn(ctx, t, agentsNS, "rn-"+a.agent)
		})
	}

	// Without the registry among the allowed hosts the proxy refuses it:
	// the install fails at once and says so, the command never runs.
	c2, cancel2 := context.WithTimeout(ctx, installTimeout)
	defer cancel2()
	r := s.pluginRunEnv(c2, env, append([]string{"run", "rn-refused", "-n", agentsNS, "--agent", "claude",
		"--allow-host", "other.test:443", "--env", "NPM_CONFIG_REGISTRY=" + registry}, append(small, "--", "claude", "--version")...)...)
	if r.code == 0 || strings.Contains(r.stdout, claudeVersion) {
		t.Fatalf("an install through a fence without the registry: %s", r)
	}
	for _, want := range []string{"installing claude in sandbox/rn-refused failed", "403", mirrorHost} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the refusal should say %q: %s", want, r)
		}
	}
	record("agents: run --agent claude, registry not allowed (→ failure)", r.took)
	s.sandboxGoneIn(ctx, t, agentsNS, "rn-refused")
}

// claudeFlow is `run --agent claude --copy-in REPO:/workspace/repo
// --copy-out /workspace/repo:OUT -w /workspace/repo -- claude -p …` against
// the model on port, with a fresh copy of test/agentmock's repository; it
// returns the run and where the repository came back (OUT/repo).
func (s *suite) claudeFlow(ctx context.Context, t *testing.T, env, small []string, name, port, registry string) (result, string) {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	if err := os.Mkdir(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := agentmock.WriteRepo(repo); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	c, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	args := []string{"run", name, "-n", agentsNS, "--agent", "claude",
		"--allow-host", mirrorHost + ":" + mirrorPort, "--allow-host", modelHost + ":" + port,
		"--env", "NPM_CONFIG_REGISTRY=" + registry,
		// The base URL Claude Code documents; the key is the preset's
		// credential (env, a fake).
		"--env", "ANTHROPIC_BASE_URL=http://" + modelHost + ":" + port,
		"--env", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		// The first API error is final (Claude Code retries for minutes).
		"--env", "CLAUDE_CODE_MAX_RETRIES=0",
		"--copy-in", repo + ":" + flowDir, "--copy-out", flowDir + ":" + out, "-w", flowDir}
	args = append(append(args, small...), "--", "claude", "-p", "Make greeting.txt greet the agent and run the tests.",
		"--output-format", "text", "--allowedTools", "Read,Edit,Bash(sh test.sh)")
	return s.pluginRunEnv(c, env, args...), filepath.Join(out, "repo")
}

// readGreeting is the copied-out repository's greeting.
func readGreeting(t *testing.T, out string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "greeting.txt"))
	if err != nil {
		t.Fatalf("the repository was not copied out: %v", err)
	}
	return strings.TrimSpace(string(b))
}
