package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// `kubectl agentkernel serve`'s control plane, driven with plain HTTP as
// the e2b SDK drives it (the SDK itself is driven in its own test), against
// the real binary and the real API server.

// served is a running `serve` and the three variables it printed.
type served struct {
	apiURL, sandboxURL, key string
	cmd                     *exec.Cmd
	stderr                  *testexec.SyncBuffer
	exited                  chan struct{}
	sv                      *testexec.Served
}

// startServe runs serve with args (on a free loopback port) until the test
// ends, and reads the export lines it prints.
func startServe(t *testing.T, kubeconfig string, args ...string) *served {
	t.Helper()
	sv := testexec.StartServed(t, append([]string{env.binary, "--kubeconfig", kubeconfig, "serve", "--listen", "127.0.0.1:0"}, args...)...)
	s := &served{cmd: sv.Cmd, stderr: sv.Stderr, exited: sv.Exited, sv: sv,
		apiURL: sv.Vars["E2B_API_URL"], sandboxURL: sv.Vars["E2B_SANDBOX_URL"], key: sv.Vars["E2B_API_KEY"]}
	if s.apiURL == "" || s.apiURL != s.sandboxURL || !strings.HasPrefix(s.key, "e2b_") {
		t.Fatalf("serve printed %v", sv.Vars)
	}
	return s
}

// stop sends SIGTERM and waits for the exit.
func (s *served) stop(t *testing.T) { s.sv.Stop(t) }

// do sends one control-plane request; out, if not nil, gets the JSON answer.
func (s *served) do(t *testing.T, method, path string, body, out any) *http.Response {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.apiURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", method, path, err, s.stderr)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: status %d, answer %q is not JSON", method, path, resp.StatusCode, b)
		}
	}
	return resp
}

func (s *served) create(t *testing.T, in api.NewSandbox) api.Sandbox {
	t.Helper()
	var raw json.RawMessage
	resp := s.do(t, "POST", "/sandboxes", in, &raw)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create %s: status %d: %s\n%s", in.TemplateID, resp.StatusCode, raw, s.stderr)
	}
	var out api.Sandbox
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out.SandboxID == "" || out.EnvdAccessToken == nil {
		t.Fatalf("create %s answered %+v", in.TemplateID, out)
	}
	return out
}

// wantE2BError checks an answer in E2B's error shape.
func (s *served) wantE2BError(t *testing.T, method, path string, body any, status int, words ...string) {
	t.Helper()
	var e api.Error
	resp := s.do(t, method, path, body, &e)
	if resp.StatusCode != status || int(e.Code) != status {
		t.Fatalf("%s %s: status %d, code %d (%q); want %d", method, path, resp.StatusCode, e.Code, e.Message, status)
	}
	for _, w := range words {
		if !strings.Contains(e.Message, w) {
			t.Errorf("%s %s: message %q does not say %q", method, path, e.Message, w)
		}
	}
}

func (s *served) list(t *testing.T, query string) ([]api.ListedSandbox, string) {
	t.Helper()
	var page []api.ListedSandbox
	resp := s.do(t, "GET", "/v2/sandboxes"+query, nil, &page)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list %s: status %d", query, resp.StatusCode)
	}
	return page, resp.Header.Get("X-Next-Token")
}

func ptrTo[T any](v T) *T { return &v }

func TestServeControlPlane(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	mustPlugin(t, "", "pool", "create", "warm", "--size", "1", "-n", ns)
	// Wide enough for the claude preset (egress, 2 CPUs, 4Gi, 8Gi).
	s := startServe(t, env.kubeconfig, "-n", ns, "--ttl", "30m", "--profile", "moderate", "--cpu", "2", "--memory", "4Gi", "--ephemeral-storage", "8Gi")

	base := s.create(t, api.NewSandbox{TemplateID: "base", Timeout: ptrTo(int32(600)), Metadata: &api.SandboxMetadata{"team": "blue & green", "n": "1"}})
	pod := podOf(t, ns, base.SandboxID)
	// The Pod's deadline is the ceiling, --ttl; the timeout is serve's end.
	if d := pod.Spec.ActiveDeadlineSeconds; d == nil || *d != 1800 {
		t.Errorf("timeout 600 made activeDeadlineSeconds %v, want --ttl's 1800", d)
	}
	wantEnd(t, s, ns, base.SandboxID, "create with timeout 600", time.Now().Add(600*time.Second))
	preset := s.create(t, api.NewSandbox{TemplateID: "claude", Metadata: &api.SandboxMetadata{"team": "red"}})
	if img := podOf(t, ns, preset.SandboxID).Spec.Containers[0].Image; !strings.Contains(img, "node:22") {
		t.Errorf("the claude preset made image %q", img)
	}
	start := time.Now()
	claimed := s.create(t, api.NewSandbox{TemplateID: "warm", Metadata: &api.SandboxMetadata{"team": "blue & green"}})
	took := time.Since(start)
	if p := podOf(t, ns, claimed.SandboxID); !strings.HasPrefix(p.Name, sandbox.PoolMemberPrefix("warm")) || p.Labels[e2b.LabelServe] != "true" {
		t.Errorf("template warm made pod %s (labels %v), not a claim of a pool member that serve counts", p.Name, p.Labels)
	}
	t.Logf("a claim from the warm pool answered in %s", took)

	// Paging: three sandboxes, two a page, each once.
	seen := map[string]bool{}
	page, token := s.list(t, "?limit=2")
	if len(page) != 2 || token == "" {
		t.Fatalf("first page: %d sandboxes, token %q", len(page), token)
	}
	for _, l := range page {
		seen[l.SandboxID] = true
	}
	page, token = s.list(t, "?limit=2&nextToken="+url.QueryEscape(token))
	if len(page) != 1 || token != "" {
		t.Fatalf("second page: %d sandboxes, token %q", len(page), token)
	}
	seen[page[0].SandboxID] = true
	if !seen[base.SandboxID] || !seen[preset.SandboxID] || !seen[claimed.SandboxID] {
		t.Errorf("paging listed %v", seen)
	}
	// The SDK's metadata filter: each key and value encodeURIComponent'd.
	filter := "team=" + strings.ReplaceAll(url.QueryEscape("blue & green"), "+", "%20")
	blue, _ := s.list(t, "?metadata="+url.QueryEscape(filter))
	if len(blue) != 2 {
		t.Errorf("metadata team=blue & green listed %d sandboxes, want 2", len(blue))
	}
	if paused, _ := s.list(t, "?state=paused"); len(paused) != 0 {
		t.Errorf("state=paused listed %d", len(paused))
	}

	// Timeout: shortened and extended within the ceiling, which stays.
	for _, timeout := range []int32{120, 1500} {
		if resp := s.do(t, "POST", "/sandboxes/"+base.SandboxID+"/timeout", api.SandboxTimeoutRequest{Timeout: timeout}, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("timeout %d: status %d", timeout, resp.StatusCode)
		}
		wantEnd(t, s, ns, base.SandboxID, fmt.Sprintf("timeout %d", timeout), time.Now().Add(time.Duration(timeout)*time.Second))
	}
	s.wantE2BError(t, "POST", "/sandboxes/"+base.SandboxID+"/timeout", api.SandboxTimeoutRequest{Timeout: 1801}, 400, "at most 1800 seconds", "--ttl")

	var got api.SandboxDetail
	if resp := s.do(t, "GET", "/sandboxes/"+base.SandboxID, nil, &got); resp.StatusCode != http.StatusOK || got.State != api.Running || (*got.Metadata)["team"] != "blue & green" {
		t.Errorf("get: status %d, %+v", resp.StatusCode, got)
	}
	var conn api.Sandbox
	if resp := s.do(t, "POST", "/sandboxes/"+base.SandboxID+"/connect", api.ConnectSandbox{Timeout: 60}, &conn); resp.StatusCode != http.StatusOK || *conn.EnvdAccessToken != *base.EnvdAccessToken {
		t.Errorf("connect: status %d, %+v", resp.StatusCode, conn)
	}
	// connect only extends: 60s leaves the end 1500s away.
	wantEnd(t, s, ns, base.SandboxID, "connect 60 after timeout 1500", time.Now().Add(1500*time.Second))
	// serve kills a sandbox whose timeout has passed (its deadline is far).
	brief := s.create(t, api.NewSandbox{TemplateID: "base", Timeout: ptrTo(int32(1))})
	eventually(t, time.Minute, "sandbox past its timeout killed", func() bool {
		_, err := sandbox.Find(context.Background(), env.cs, ns, brief.SandboxID)
		return err != nil
	})
	s.wantE2BError(t, "GET", "/sandboxes/"+brief.SandboxID, nil, 404, "not found")
	s.wantE2BError(t, "POST", "/sandboxes/"+base.SandboxID+"/pause", api.SandboxPauseRequest{}, 400, "cannot be paused", "persistent")
	s.wantE2BError(t, "GET", "/sandboxes/e2b-nosuch/metrics", nil, 404, "not found")
	s.wantE2BError(t, "POST", "/sandboxes", api.NewSandbox{TemplateID: "base", Timeout: ptrTo(int32(7200))}, 400, "at most 1800 seconds")

	// envd's side answers only with the sandbox's token.
	health := func(token string) int {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", s.sandboxURL+"/health", http.NoBody)
		req.Header.Set("E2b-Sandbox-Id", base.SandboxID)
		req.Header.Set("E2b-Sandbox-Port", "49983")
		req.Header.Set("X-Access-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := health(*base.EnvdAccessToken); code != http.StatusNoContent {
		t.Errorf("envd /health with the token: %d", code)
	}
	if code := health(*preset.EnvdAccessToken); code != http.StatusUnauthorized {
		t.Errorf("envd /health with another sandbox's token: %d", code)
	}

	// serve --pool: E2B's default template claims from the pool, once it
	// has a ready member again (the claim above is being replaced).
	eventually(t, 2*time.Minute, "a ready member of pool warm", func() bool {
		pods, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sandbox.LabelPool + "=warm"})
		if err != nil {
			return false
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && p.Labels[sandbox.LabelSandbox] == "" {
				return true
			}
		}
		return false
	})
	pooled := startServe(t, env.kubeconfig, "-n", ns, "--pool", "warm")
	fromPool := pooled.create(t, api.NewSandbox{TemplateID: "base"})
	if p := podOf(t, ns, fromPool.SandboxID); !strings.HasPrefix(p.Name, sandbox.PoolMemberPrefix("warm")) {
		t.Errorf("serve --pool warm made pod %s for template base, not a claim of a pool member", p.Name)
	}
	pooled.stop(t)

	for _, id := range []string{base.SandboxID, preset.SandboxID, claimed.SandboxID, fromPool.SandboxID} {
		if resp := s.do(t, "DELETE", "/sandboxes/"+id, nil, nil); resp.StatusCode != http.StatusNoContent {
			t.Errorf("kill %s: status %d", id, resp.StatusCode)
		}
	}
	s.wantE2BError(t, "DELETE", "/sandboxes/"+base.SandboxID, nil, 404, "not found")
	eventually(t, 2*time.Minute, "the killed sandboxes gone from the list", func() bool {
		left, _ := s.list(t, "")
		return len(left) == 0
	})
	s.stop(t)
	mustPlugin(t, "", "pool", "delete", "warm", "-n", ns)
	eventually(t, 2*time.Minute, "nothing left in "+ns, func() bool { return len(objectsLeft(t, ns)) == 0 })
	assertNothingLeft(t, ns)
	if !strings.Contains(s.stderr.String(), `msg="killed sandbox"`) {
		t.Errorf("serve's log does not show the kills:\n%s", s.stderr)
	}
}

func podOf(t *testing.T, ns, id string) *corev1.Pod {
	t.Helper()
	pod, err := sandbox.Find(context.Background(), env.cs, ns, id)
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

func TestServeRefusesWhatItCannotServe(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	r := plugin(t, "", "serve", "-n", ns, "--listen", "0.0.0.0:0")
	if r.code == 0 || !strings.Contains(r.stderr, "not a loopback address") || !strings.Contains(r.stderr, "--tls-cert-file") {
		t.Errorf("serve --listen 0.0.0.0 without TLS: %s", r)
	}
	if r.stdout != "" {
		t.Errorf("a refused serve printed %q", r.stdout)
	}
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("e2b_short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = plugin(t, "", "serve", "-n", ns, "--api-key-file", keys)
	if r.code == 0 || !strings.Contains(r.stderr, "line 1 is not an API key") {
		t.Errorf("serve with a bad key file: %s", r)
	}
	r = plugin(t, "", "serve", "-n", ns, "--ttl", "0")
	if r.code == 0 || !strings.Contains(r.stderr, "--ttl must be positive") {
		t.Errorf("serve --ttl 0: %s", r)
	}
	// A key of the file is the one accepted; a minted one is not printed.
	good := "e2b_" + strings.Repeat("ab", 16)
	if err := os.WriteFile(keys, []byte("# ours\n"+good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, env.kubeconfig, "-n", ns, "--api-key-file", keys)
	if s.key != good {
		t.Errorf("serve printed key %q, want the file's", s.key)
	}
	s.key = "e2b_" + strings.Repeat("cd", 16)
	s.wantE2BError(t, "GET", "/v2/sandboxes", nil, 401, "X-API-Key")
	s.stop(t)
	if err := s.cmd.ProcessState; err == nil || err.ExitCode() != 143 {
		t.Errorf("serve's exit after SIGTERM: %v (want 143)\n%s", err, s.stderr)
	}
}

// serveDrive is the least-privilege row's run of serve: it creates, lists
// and kills a sandbox through the control plane, then stops serve. A
// refused step ends the run with its E2B error as the first line of stderr.
func serveDrive(t *testing.T, kubeconfig string, args []string) result {
	s := startServe(t, kubeconfig, args[1:]...) // args[0] is "serve"
	var transcript strings.Builder
	fail := ""
	step := func(name, method, path string, body any, status int) []byte {
		if fail != "" {
			return nil
		}
		var raw json.RawMessage
		resp := s.do(t, method, path, body, &raw)
		fmt.Fprintf(&transcript, "%s: %d %s\n", name, resp.StatusCode, raw)
		if resp.StatusCode != status {
			var e api.Error
			_ = json.Unmarshal(raw, &e)
			fail = fmt.Sprintf("%s: %d %s\n", name, resp.StatusCode, e.Message)
		}
		return raw
	}
	var created api.Sandbox
	if raw := step("create", "POST", "/sandboxes", api.NewSandbox{TemplateID: "base"}, http.StatusCreated); raw != nil {
		_ = json.Unmarshal(raw, &created)
	}
	step("list", "GET", "/v2/sandboxes", nil, http.StatusOK)
	step("kill", "DELETE", "/sandboxes/"+created.SandboxID, nil, http.StatusNoContent)
	s.stop(t)
	r := result{stdout: transcript.String(), stderr: fail + s.stderr.String()}
	if fail != "" {
		r.code = 1
	}
	return r
}

// serveNamesWhatItLacks: in a namespace where the user has nothing, create
// is refused in E2B's shape, naming the permission (its first call counts
// serve's sandboxes, for --max-sandboxes) and the rbac command.
func serveNamesWhatItLacks(ns string, r result) error {
	first, _, _ := strings.Cut(r.stderr, "\n")
	if !strings.HasPrefix(first, "create: 403 ") || !strings.Contains(first, `cannot list resource "pods"`) ||
		!strings.Contains(first, "kubectl agentkernel rbac -n "+ns) {
		return fmt.Errorf("the refusal does not name the permission (%q) and the rbac command", `cannot list resource "pods"`)
	}
	return nil
}

// A persistent sandbox (made by create --persist) pauses and resumes over
// E2B's API; its access token survives the resume (it is bound to the
// workspace, not to the Pod a pause ends).
func TestServePausesAndResumesAPersistentSandbox(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	class := storageFor(t, 1)
	createSandbox(t, ns, "keep", "--persist=1Gi", "--storage-class", class)
	s := startServe(t, env.kubeconfig, "-n", ns)

	var before api.Sandbox
	if resp := s.do(t, "POST", "/sandboxes/keep/connect", api.ConnectSandbox{Timeout: 300}, &before); resp.StatusCode != http.StatusOK {
		t.Fatalf("connect: status %d\n%s", resp.StatusCode, s.stderr)
	}
	// E2B metadata, as create would have written it: it stays with the
	// paused sandbox and comes back with it.
	patch := `{"metadata":{"annotations":{"` + e2b.AnnotationMetadata + `":"{\"owner\":\"ann\"}"}}}`
	if _, err := env.cs.CoreV1().Pods(ns).Patch(context.Background(), podOf(t, ns, "keep").Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if resp := s.do(t, "POST", "/sandboxes/keep/pause", api.SandboxPauseRequest{Memory: ptrTo(true)}, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("pause: status %d\n%s", resp.StatusCode, s.stderr)
	}
	s.wantE2BError(t, "POST", "/sandboxes/keep/pause", api.SandboxPauseRequest{}, 409, "already paused")
	var d api.SandboxDetail
	if resp := s.do(t, "GET", "/sandboxes/keep", nil, &d); resp.StatusCode != http.StatusOK || d.State != api.Paused {
		t.Errorf("get of the paused sandbox: status %d, state %q", resp.StatusCode, d.State)
	}
	if paused, _ := s.list(t, "?state=paused&metadata="+url.QueryEscape("owner=ann")); len(paused) != 1 || paused[0].SandboxID != "keep" {
		t.Errorf("state=paused listed %+v", paused)
	}
	if running, _ := s.list(t, "?state=running"); len(running) != 0 {
		t.Errorf("state=running listed %+v", running)
	}
	s.wantE2BError(t, "POST", "/sandboxes/keep/timeout", api.SandboxTimeoutRequest{Timeout: 60}, 400, "paused")

	var after api.Sandbox
	if resp := s.do(t, "POST", "/sandboxes/keep/connect", api.ConnectSandbox{Timeout: 300}, &after); resp.StatusCode != http.StatusCreated {
		t.Fatalf("connect to the paused sandbox: status %d\n%s", resp.StatusCode, s.stderr)
	}
	if *after.EnvdAccessToken != *before.EnvdAccessToken {
		t.Error("the access token changed across pause and resume")
	}
	if resp := s.do(t, "GET", "/sandboxes/keep", nil, &d); resp.StatusCode != http.StatusOK || d.State != api.Running || d.Metadata == nil || (*d.Metadata)["owner"] != "ann" {
		t.Errorf("get of the resumed sandbox: status %d, %+v", resp.StatusCode, d)
	}
	if resp := s.do(t, "DELETE", "/sandboxes/keep", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("kill: status %d", resp.StatusCode)
	}
	eventually(t, 2*time.Minute, "nothing left in "+ns, func() bool { return len(objectsLeft(t, ns)) == 0 })
}

// wantEnd fails unless sandbox id's E2B end, as getInfo reports it, is
// within 10s of want, and its Pod's deadline is still the ceiling (--ttl
// 30m).
func wantEnd(t *testing.T, s *served, ns, id, what string, want time.Time) {
	t.Helper()
	var d api.SandboxDetail
	if resp := s.do(t, "GET", "/sandboxes/"+id, nil, &d); resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: get: status %d", what, resp.StatusCode)
	}
	if d.EndAt.Sub(want).Abs() > 10*time.Second {
		t.Errorf("%s: endAt %s, want %s", what, d.EndAt, want.UTC())
	}
	if got := podOf(t, ns, id).Annotations[e2b.AnnotationEnd]; got != d.EndAt.UTC().Format(time.RFC3339) {
		t.Errorf("%s: annotation %s is %q, getInfo's endAt %s", what, e2b.AnnotationEnd, got, d.EndAt)
	}
	if dl := podOf(t, ns, id).Spec.ActiveDeadlineSeconds; dl == nil || *dl != 1800 {
		t.Errorf("%s: activeDeadlineSeconds %v, want the ceiling 1800 untouched", what, dl)
	}
}
