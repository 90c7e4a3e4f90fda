package realnode

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// E2B's own JS SDK (test/e2bsdk, the programs the kwok e2e tier runs in
// test/e2e/serve_sdk_test.go) against `kubectl agentkernel serve` with a
// real kubelet: here exec'd commands get the Pod's environment, so the
// lifecycle program checks a cold sandbox's envs too (no
// E2BSDK_NODE_EXEC_POD_ENV=0).

// sdkSmall keeps serve's sandboxes small enough for several at once in the
// guest (2 CPUs, 3 GiB), with room for the files program's large file.
var sdkSmall = []string{"--cpu", "100m", "--memory", "256Mi", "--ephemeral-storage", "512Mi"}

// sdkLargeMiB: the files program's large file, smaller than the kwok tier's
// 64 MiB: every byte crosses the emulated guest's exec stream.
const sdkLargeMiB = "16"

// sdkSandboxTimeout is the commands, files and pty programs' sandboxes'
// timeout (E2B's default is 5 min, which serve now enforces): each of
// their many commands is two or more execs of 2-30 s here. (lifecycle's
// own setTimeout and connect move its sandbox's end to 15 min.)
const sdkSandboxTimeout = 15 * time.Minute

// sdkCreateTimeout is the SDK's request timeout for Sandbox.create (E2B's
// default is 60 s; a first Pod under TCG may take longer).
const sdkCreateTimeout = 4 * time.Minute

// sdkCommandTimeout is the commands' stream timeout (the SDK's default is
// 60 s): a background command here outlives several steps of execs, each
// of which takes seconds, tens of them on a loaded machine.
const sdkCommandTimeout = 10 * time.Minute

// sdkWaitScale lengthens the programs' waits for something to happen
// (a watch's event, an echo of stdin): each is a few execs here.
const sdkWaitScale = "10"

type sdkServe struct{ *testexec.Served }

// startSDKServe starts serve on ns on a free loopback port; stopped at the
// end of the test.
func (s *suite) startSDKServe(t *testing.T, ns string) *sdkServe {
	t.Helper()
	argv := append([]string{s.plugin, "--kubeconfig", s.cluster.AdminKubeconfig, "serve", "--listen", "127.0.0.1:0", "-n", ns,
		"--timeout", slowTimeout.String()}, sdkSmall...)
	return &sdkServe{testexec.StartServed(t, argv...)}
}

// stop sends SIGTERM and waits; it returns serve's log.
func (sv *sdkServe) stop(t *testing.T) string { return sv.Stop(t) }

type sdkReport struct {
	Program  string                      `json:"program"`
	OK       bool                        `json:"ok"`
	Steps    map[string]struct{ MS int } `json:"steps"`
	Measured map[string]any              `json:"measured"`
	Skipped  []string                    `json:"skipped"`
}

// runSDK runs test/e2bsdk/PROGRAM with node against serve and wants its
// report to pass; allowSkip names the parts it may leave out.
func (sv *sdkServe) runSDK(t *testing.T, dir, program string, allowSkip []string, extraEnv ...string) sdkReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, program))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"E2B_API_URL="+sv.Vars["E2B_API_URL"], "E2B_SANDBOX_URL="+sv.Vars["E2B_SANDBOX_URL"], "E2B_API_KEY="+sv.Vars["E2B_API_KEY"],
		"E2B_DOMAIN=", "E2B_DEBUG=", "E2B_VALIDATE_API_KEY=", "E2B_ACCESS_TOKEN=", "E2BSDK_NODE_EXEC_POD_ENV=",
		"E2BSDK_STACK=1", "E2BSDK_DIR=/workspace/e2bsdk", "E2BSDK_RUN_ID="+sandbox.RandomHex(4),
		"E2BSDK_CREATE_TIMEOUT_MS="+strconv.FormatInt(sdkCreateTimeout.Milliseconds(), 10),
		"E2BSDK_LARGE_MIB="+sdkLargeMiB,
		"E2BSDK_SANDBOX_TIMEOUT_MS="+strconv.FormatInt(sdkSandboxTimeout.Milliseconds(), 10),
		"E2BSDK_COMMAND_TIMEOUT_MS="+strconv.FormatInt(sdkCommandTimeout.Milliseconds(), 10),
		"E2BSDK_WAIT_SCALE="+sdkWaitScale,
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	t0 := time.Now()
	err := cmd.Run()
	record("e2b SDK: node "+program, time.Since(t0))
	var rep sdkReport
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	jsonErr := json.Unmarshal([]byte(lines[len(lines)-1]), &rep)
	if err != nil || jsonErr != nil || !rep.OK {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s\nserve's log:\n%s", program, err, out.String(), errOut.String(), lastLines(sv.Stderr.String(), 60))
	}
	if rep.Program != strings.TrimSuffix(program, ".mjs") || len(rep.Steps) == 0 {
		t.Errorf("%s reported program %q with %d steps", program, rep.Program, len(rep.Steps))
	}
	for _, sk := range rep.Skipped {
		allowed := false
		for _, a := range allowSkip {
			allowed = allowed || strings.HasPrefix(sk, a)
		}
		if !allowed {
			t.Errorf("%s skipped %q", program, sk)
		}
	}
	t.Logf("%s: %s", program, lines[len(lines)-1])
	return rep
}

func sdkMeasured(t *testing.T, rep sdkReport, key string) time.Duration {
	t.Helper()
	v, ok := rep.Measured[key].(float64)
	if !ok {
		t.Fatalf("%s did not measure %s: %v", rep.Program, key, rep.Measured)
	}
	return time.Duration(v) * time.Millisecond
}

// sdkNamespace makes a namespace of the test's own under "restricted" and
// deletes it at the end.
func (s *suite) sdkNamespace(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	_, err := s.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	if err := poll(ctx, time.Minute, func() (bool, error) {
		_, err := s.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("no default ServiceAccount in %s: %v", name, err)
	}
	return name
}

// sdkLeft lists what of the plugin's is left in ns.
func (s *suite) sdkLeft(ctx context.Context, t *testing.T, ns string) []string {
	t.Helper()
	var left []string
	pods, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		left = append(left, "pod/"+p.Name)
	}
	secrets, err := s.client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: sandbox.ManagedSelector})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range secrets.Items {
		left = append(left, "secret/"+x.Name)
	}
	nps, err := s.client.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range nps.Items {
		left = append(left, "networkpolicy/"+x.Name)
	}
	pts, err := s.client.CoreV1().PodTemplates(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range pts.Items {
		left = append(left, "podtemplate/"+x.Name)
	}
	return left
}

// TestE2BSDKOnARealNode: the SDK's lifecycle (with a claim from a warm
// pool), commands, files and pty programs against serve on the real
// kubelet; then nothing is left. Pause/resume of a persistent sandbox is
// the kwok tier's (and TestPersistentSandbox's) alone: it would double
// this test's time under TCG.
func TestE2BSDKOnARealNode(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	out, err := exec.Command(filepath.Join(repoRoot(), "hack", "e2bsdk.sh")).Output()
	if err != nil {
		t.Fatalf("installing the e2b SDK (hack/e2bsdk.sh): %v", err)
	}
	dir := strings.TrimSpace(string(out))
	ns := s.sdkNamespace(ctx, t, "agentkernel-e2bsdk")
	sv := s.startSDKServe(t, ns)

	// Subtests, so that one program can be run alone (-run
	// 'TestE2BSDKOnARealNode/commands'): a whole run takes many minutes
	// under TCG.
	t.Run("lifecycle", func(t *testing.T) {
		c, cancel := context.WithTimeout(ctx, slowTimeout)
		defer cancel()
		r := s.pluginRun(c, "", append([]string{"pool", "create", "e2bsdk-pool", "--size", "1", "-n", ns, "--timeout", slowTimeout.String()}, small...)...)
		if r.code != 0 {
			t.Fatalf("pool create: %s\n%s", r, s.node.Diagnostics())
		}
		defer func() {
			if r := s.pluginRun(ctx, "", "pool", "delete", "e2bsdk-pool", "-n", ns); r.code != 0 {
				t.Errorf("pool delete: %s", r)
			}
		}()
		rep := sv.runSDK(t, dir, "lifecycle.mjs", []string{"pause/resume"}, "E2BSDK_POOL=e2bsdk-pool")
		if checked, _ := rep.Measured["coldEnvsChecked"].(bool); !checked {
			t.Error("lifecycle did not check a cold sandbox's envs in its commands")
		}
		cold, warm := sdkMeasured(t, rep, "createColdMs"), sdkMeasured(t, rep, "createFromPoolMs")
		record("e2b SDK: Sandbox.create() cold", cold)
		record("e2b SDK: Sandbox.create() from the pool", warm)
		logSpeed(t, "e2bsdk-create-cold", cold)
		logSpeed(t, "e2bsdk-create-pool", warm)
	})

	t.Run("commands", func(t *testing.T) {
		// 40 lines a second apart: the follow of a command's output is an
		// exec of its own, which started 20-27 s after the command here.
		rep := sv.runSDK(t, dir, "commands.mjs", nil, "E2BSDK_STREAM_LINES=40")
		runTrue := sdkMeasured(t, rep, "runTrueMedianMs")
		record("e2b SDK: commands.run('true') median of 5", runTrue)
		record("e2b SDK: first line of a streamed command", sdkMeasured(t, rep, "firstLineMs"))
		logSpeed(t, "e2bsdk-run-true", runTrue)
	})

	t.Run("files", func(t *testing.T) {
		rep := sv.runSDK(t, dir, "files.mjs", nil)
		if n, _ := rep.Measured["largeMiB"].(float64); n != 16 {
			t.Errorf("the large file was %v MiB, want %s", n, sdkLargeMiB)
		}
	})

	t.Run("pty", func(t *testing.T) { sv.runSDK(t, dir, "pty.mjs", nil) })

	log := sv.stop(t)
	if strings.Contains(log, sv.Vars["E2B_API_KEY"]) {
		t.Error("serve's log holds the API key")
	}
	var left []string
	if err := poll(ctx, deleteTimeout, func() (bool, error) {
		left = s.sdkLeft(ctx, t, ns)
		return len(left) == 0, nil
	}); err != nil {
		t.Fatalf("left in %s after the SDK's programs, serve's stop and pool delete: %v (%v)", ns, left, err)
	}
}
