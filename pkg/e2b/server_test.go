package e2b

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func TestControlPlaneNeedsAKey(t *testing.T) {
	ts := newTestServer(t, nil)
	for name, headers := range map[string]map[string]string{
		"missing":        {},
		"wrong":          {"X-API-Key": "e2b_ffffffffffffffffffffffffffffffff"},
		"prefix of key":  {"X-API-Key": testKey[:20]},
		"key and more":   {"X-API-Key": testKey + "0"},
		"bearer instead": {"Authorization": "Bearer " + testKey},
	} {
		t.Run(name, func(t *testing.T) {
			var e api.Error
			resp := ts.callWith(t, "GET", "/v2/sandboxes", nil, &e, headers)
			checkError(t, name, resp, &e, http.StatusUnauthorized, "X-API-Key")
		})
	}
	var list []api.ListedSandbox
	if resp := ts.call(t, "GET", "/v2/sandboxes", nil, &list); resp.StatusCode != http.StatusOK || len(list) != 0 {
		t.Fatalf("list with the key: status %d, %d sandboxes; want 200 and none", resp.StatusCode, len(list))
	}
}

func TestCreateGetKill(t *testing.T) {
	ts := newTestServer(t, nil)
	out := ts.create(t, api.NewSandbox{TemplateID: "base", Timeout: ptr(int32(120)), Metadata: &api.SandboxMetadata{"user": "ann & bob", "app": "x=y"}})
	if out.EnvdVersion != DefaultEnvdVersion || out.TemplateID != "base" {
		t.Errorf("create answered %+v", out)
	}
	pod := ts.pod(t, out.SandboxID)
	// The deadline is the ceiling (serve's --ttl, an hour); the timeout
	// is the E2B end, which serve enforces (timeout_test.go).
	if d := pod.Spec.ActiveDeadlineSeconds; d == nil || *d != 3600 {
		t.Errorf("timeout 120 gave activeDeadlineSeconds %v, want the ceiling 3600", d)
	}
	if end, ok := endOf(pod); !ok || end.Sub(pod.Status.StartTime.Time) < 119*time.Second || end.Sub(pod.Status.StartTime.Time) > 121*time.Second {
		t.Errorf("timeout 120 gave the end %q", pod.Annotations[AnnotationEnd])
	}
	if !strings.Contains(pod.Annotations[AnnotationMetadata], "ann \\u0026 bob") && !strings.Contains(pod.Annotations[AnnotationMetadata], "ann & bob") {
		t.Errorf("metadata annotation %q", pod.Annotations[AnnotationMetadata])
	}

	var d api.SandboxDetail
	if resp := ts.call(t, "GET", "/sandboxes/"+out.SandboxID, nil, &d); resp.StatusCode != http.StatusOK {
		t.Fatalf("get: status %d", resp.StatusCode)
	}
	if d.SandboxID != out.SandboxID || d.State != api.Running || d.Metadata == nil || (*d.Metadata)["app"] != "x=y" || d.CpuCount < 1 || d.MemoryMB < 1 {
		t.Errorf("get answered %+v", d)
	}
	if left := d.EndAt.Sub(d.StartedAt); left < 119*time.Second || left > 121*time.Second {
		t.Errorf("endAt - startedAt = %s, want the timeout 120s", left)
	}

	if resp := ts.call(t, "DELETE", "/sandboxes/"+out.SandboxID, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("kill: status %d, want 204", resp.StatusCode)
	}
	ts.wantError(t, "DELETE", "/sandboxes/"+out.SandboxID, nil, http.StatusNotFound, out.SandboxID, "not found")
	ts.wantError(t, "GET", "/sandboxes/"+out.SandboxID, nil, http.StatusNotFound, "not found")
}

func TestCreateRefusesWhatItCannotGive(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, c := range []struct {
		name   string
		body   any
		status int
		words  []string
	}{
		{"malformed JSON", `{"templateID": "base"`, 400, []string{"not the JSON"}},
		{"wrong types", `{"templateID": 7}`, 400, []string{"not the JSON"}},
		{"timeout over --ttl", api.NewSandbox{TemplateID: "base", Timeout: ptr(int32(7200))}, 400, []string{"at most 3600 seconds"}},
		{"negative timeout", api.NewSandbox{TemplateID: "base", Timeout: ptr(int32(-1))}, 400, []string{"positive"}},
		{"unknown template", api.NewSandbox{TemplateID: "no-such-thing"}, 404, []string{"template", "not found", "base", "claude"}},
		{"autoPause", api.NewSandbox{TemplateID: "base", AutoPause: ptr(true)}, 400, []string{"pause"}},
		{"volume mounts", api.NewSandbox{TemplateID: "base", VolumeMounts: &[]api.SandboxVolumeMount{{Name: "v", Path: "/v"}}}, 400, []string{"volumeMounts"}},
		{"network rules", api.NewSandbox{TemplateID: "base", Network: &api.SandboxNetworkConfig{AllowOut: &[]string{"example.com"}}}, 400, []string{"allowOut"}},
		{"bad env name", api.NewSandbox{TemplateID: "base", EnvVars: &api.EnvVars{"A=B": "c"}}, 400, []string{"envVars"}},
		{"too much metadata", api.NewSandbox{TemplateID: "base", Metadata: &api.SandboxMetadata{"k": strings.Repeat("v", 4000)}}, 400, []string{"metadata"}},
		{"body too large", `{"templateID": "` + strings.Repeat("a", 2<<20) + `"}`, 413, []string{"larger than"}},
	} {
		t.Run(c.name, func(t *testing.T) { ts.wantError(t, "POST", "/sandboxes", c.body, c.status, c.words...) })
	}
	if pods, _ := sandbox.List(context.Background(), ts.cs, testNamespace, ""); len(pods) != 0 {
		t.Errorf("refused creates left %d sandboxes", len(pods))
	}
}

func TestCreatePresetWithinCeiling(t *testing.T) {
	// The preset's network (moderate: egress) is beyond a restrictive serve.
	newTestServer(t, nil).wantError(t, "POST", "/sandboxes", api.NewSandbox{TemplateID: "claude"}, 400, "beyond serve's limits", "network")
	ts := newTestServer(t, func(o *Options) {
		o.Spec.Memory.Set(4 << 30)
		o.Spec.CPU.Set(4)
		o.Spec.EphemeralStorage.Set(8 << 30)
		o.Spec.Network = sandbox.NetworkEgress
	})
	out := ts.create(t, api.NewSandbox{TemplateID: "claude"})
	pod := ts.pod(t, out.SandboxID)
	if img := pod.Spec.Containers[0].Image; !strings.Contains(img, "node") {
		t.Errorf("preset claude gave image %q", img)
	}
	if out.TemplateID != "claude" {
		t.Errorf("templateID %q", out.TemplateID)
	}
	// A ceiling smaller than the preset's resources refuses it.
	small := newTestServer(t, func(o *Options) {
		o.Spec.Memory.Set(64 << 20)
		o.Spec.CPU.Set(4)
		o.Spec.EphemeralStorage.Set(8 << 30)
		o.Spec.Network = sandbox.NetworkEgress
	})
	small.wantError(t, "POST", "/sandboxes", api.NewSandbox{TemplateID: "claude"}, 400, "beyond serve's limits", "memory")
}

func TestEnvVarsSecretOrPlain(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.SecretEnvPatterns = []string{"*_KEY"} })
	out := ts.create(t, api.NewSandbox{TemplateID: "base", EnvVars: &api.EnvVars{"OPENAI_KEY": "s3cret-value", "MODE": "fast"}})
	pod := ts.pod(t, out.SandboxID)
	spec := fmt.Sprintf("%+v", pod.Spec)
	if strings.Contains(spec, "s3cret-value") {
		t.Fatalf("the secret value is in the Pod spec")
	}
	if !strings.Contains(spec, "fast") {
		t.Errorf("the plain envVar MODE is not in the Pod spec")
	}
	sec, err := ts.cs.CoreV1().Secrets(testNamespace).Get(context.Background(), sandbox.SecretName(out.SandboxID), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no Secret for the secret envVar: %v", err)
	}
	if string(sec.Data["OPENAI_KEY"]) != "s3cret-value" && sec.StringData["OPENAI_KEY"] != "s3cret-value" {
		t.Errorf("Secret holds %v", sec.Data)
	}
}

func TestListPagingAndFilters(t *testing.T) {
	ts := newTestServer(t, nil)
	for i := range 5 {
		team := "a"
		if i%2 == 1 {
			team = "b c&d"
		}
		ts.create(t, api.NewSandbox{TemplateID: "base", Metadata: &api.SandboxMetadata{"team": team}})
	}
	seen := map[string]bool{}
	token := ""
	pages := 0
	for {
		q := "?limit=2"
		if token != "" {
			q += "&nextToken=" + url.QueryEscape(token)
		}
		var page []api.ListedSandbox
		resp := ts.call(t, "GET", "/v2/sandboxes"+q, nil, &page)
		if resp.StatusCode != http.StatusOK || len(page) > 2 {
			t.Fatalf("page %d: status %d, %d items", pages, resp.StatusCode, len(page))
		}
		for _, l := range page {
			if seen[l.SandboxID] {
				t.Errorf("%s listed twice", l.SandboxID)
			}
			seen[l.SandboxID] = true
		}
		pages++
		if token = resp.Header.Get("X-Next-Token"); token == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if pages != 3 || len(seen) != 5 {
		t.Errorf("%d pages, %d sandboxes; want 3 and 5", pages, len(seen))
	}

	// The SDK's filter: keys and values encodeURIComponent'd, joined as a query.
	filter := url.Values{url.PathEscape("team"): {strings.ReplaceAll(url.QueryEscape("b c&d"), "+", "%20")}}.Encode()
	var b []api.ListedSandbox
	ts.call(t, "GET", "/v2/sandboxes?metadata="+url.QueryEscape(filter), nil, &b)
	if len(b) != 2 {
		t.Errorf("metadata filter team=%q listed %d, want 2", "b c&d", len(b))
	}
	var paused []api.ListedSandbox
	ts.call(t, "GET", "/v2/sandboxes?state=paused", nil, &paused)
	if len(paused) != 0 {
		t.Errorf("state=paused listed %d", len(paused))
	}
	var running []api.ListedSandbox
	ts.call(t, "GET", "/v2/sandboxes?state=running,paused", nil, &running)
	if len(running) != 5 {
		t.Errorf("state=running,paused listed %d", len(running))
	}

	ts.wantError(t, "GET", "/v2/sandboxes?limit=0", nil, 400, "limit")
	ts.wantError(t, "GET", "/v2/sandboxes?limit=101", nil, 400, "limit")
	ts.wantError(t, "GET", "/v2/sandboxes?nextToken=garbage!", nil, 400, "nextToken")
	ts.wantError(t, "GET", "/v2/sandboxes?state=dead", nil, 400, "state")
	ts.wantError(t, "GET", "/v2/sandboxes?limit=abc", nil, 400, "limit")
}

func TestConnectPauseAndTheUnsupported(t *testing.T) {
	ts := newTestServer(t, nil)
	created := ts.create(t, api.NewSandbox{TemplateID: "base"})
	id := created.SandboxID
	var c api.Sandbox
	if resp := ts.call(t, "POST", "/sandboxes/"+id+"/connect", api.ConnectSandbox{Timeout: 300}, &c); resp.StatusCode != http.StatusOK {
		t.Fatalf("connect: status %d", resp.StatusCode)
	}
	if c.SandboxID != id || c.EnvdAccessToken == nil || *c.EnvdAccessToken != *created.EnvdAccessToken {
		t.Errorf("connect answered %+v, want create's token", c)
	}
	ts.wantError(t, "POST", "/sandboxes/nope-123/connect", api.ConnectSandbox{Timeout: 300}, 404, "not found")
	ts.wantError(t, "POST", "/sandboxes/"+id+"/pause", api.SandboxPauseRequest{}, 400, "cannot be paused", "persistent")
	ts.wantError(t, "POST", "/sandboxes/"+id+"/resume", api.ResumedSandbox{}, 409, "already running")
	ts.wantError(t, "GET", "/sandboxes/"+id+"/metrics", nil, 501, "metrics are not supported")
	ts.wantError(t, "GET", "/v2/sandboxes/"+id+"/logs", nil, 501, "logs are not supported")
	ts.wantError(t, "PUT", "/sandboxes/"+id+"/network", api.SandboxNetworkUpdateConfig{}, 501, "network")
	ts.wantError(t, "POST", "/sandboxes/"+id+"/fork", api.SandboxForkRequest{}, 501, "fork")
	ts.wantError(t, "POST", "/sandboxes/"+id+"/snapshots", api.SandboxSnapshotRequest{}, 501, "snapshot")
	ts.wantError(t, "GET", "/sandboxes/nope-123/metrics", nil, 404, "not found")
	ts.wantError(t, "GET", "/templates", nil, 404, "not an operation serve answers")
	ts.wantError(t, "GET", "/sandboxes/..%2F..%2Fetc", nil, 404)
}

func TestEnvdRoutingAndTokens(t *testing.T) {
	ts := newTestServer(t, nil)
	out := ts.create(t, api.NewSandbox{TemplateID: "base"})
	other := ts.create(t, api.NewSandbox{TemplateID: "base"})
	envd := func(headers map[string]string) (*http.Response, *api.Error) {
		var e api.Error
		return ts.callWith(t, "GET", "/health", nil, &e, headers), &e
	}
	good := map[string]string{"E2b-Sandbox-Id": out.SandboxID, "E2b-Sandbox-Port": "49983", "X-Access-Token": *out.EnvdAccessToken}
	if resp, _ := envd(good); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("envd with the token: status %d", resp.StatusCode)
	}
	if len(ts.envd.got) != 1 || ts.envd.got[0].ID != out.SandboxID || ts.envd.got[0].Exec == nil || ts.envd.got[0].Namespace != testNamespace {
		t.Fatalf("envd saw %+v", ts.envd.got)
	}
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for a, b := range good {
			h[a] = b
		}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	for _, c := range []struct {
		name    string
		headers map[string]string
		status  int
		word    string
	}{
		{"no token", with("X-Access-Token", ""), 401, "X-Access-Token"},
		{"wrong token", with("X-Access-Token", strings.Repeat("0", 64)), 401, "X-Access-Token"},
		{"another sandbox's token", with("X-Access-Token", *other.EnvdAccessToken), 401, "X-Access-Token"},
		{"the API key as token", with("X-Access-Token", testKey), 401, "X-Access-Token"},
		{"another port", with("E2b-Sandbox-Port", "8080"), 502, "port-forward"},
		{"unknown sandbox", with("E2b-Sandbox-Id", "nope-123"), 502, "not found"},
		{"not a name", with("E2b-Sandbox-Id", "../../x"), 502, "not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, e := envd(c.headers)
			checkError(t, c.name, resp, e, c.status, c.word)
		})
	}
	if len(ts.envd.got) != 1 {
		t.Errorf("refused requests reached envd: %d calls", len(ts.envd.got))
	}
	// A token is bound to the sandbox's identity: a new sandbox of the same
	// name (another UID) does not take it.
	if ts.srv.keys.token(testNamespace, out.SandboxID, "uid-1") == ts.srv.keys.token(testNamespace, out.SandboxID, "uid-2") {
		t.Error("tokens of two UIDs are equal")
	}
	// The same keys give the same tokens: a restarted serve honours them.
	again, _ := New(Options{Namespace: testNamespace, Clientset: ts.cs, APIKeys: []string{testKey}})
	if again.keys.token(testNamespace, "x", "u") != ts.srv.keys.token(testNamespace, "x", "u") {
		t.Error("a new server with the same key derives other tokens")
	}
}

func TestReadAPIKeys(t *testing.T) {
	keys, err := ReadAPIKeys(strings.NewReader("# mine\n\n" + testKey + "\n  e2b_ffffffffffffffffffffffffffffffffff  \n"))
	if err != nil || len(keys) != 2 || keys[0] != testKey {
		t.Fatalf("ReadAPIKeys = %q, %v", keys, err)
	}
	for _, bad := range []string{"", "# only a comment\n", "e2b_short\n", "E2B_00112233445566778899AABBCCDDEEFF\n", testKey + "\nnot-a-key\n"} {
		if _, err := ReadAPIKeys(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadAPIKeys(%q) accepted it", bad)
		}
	}
	if k := NewAPIKey(); !apiKeyPattern.MatchString(k) || len(k) != len("e2b_")+32 || k == NewAPIKey() {
		t.Errorf("NewAPIKey() = %q", k)
	}
}

func TestNoInternetHoldsOverAPreset(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Spec.Memory.Set(4 << 30)
		o.Spec.CPU.Set(4)
		o.Spec.EphemeralStorage.Set(8 << 30)
		o.Spec.Network = sandbox.NetworkEgress
	})
	out := ts.create(t, api.NewSandbox{TemplateID: "claude", AllowInternetAccess: ptr(false)})
	if n := ts.pod(t, out.SandboxID).Annotations[sandbox.AnnotationNetwork]; n != string(sandbox.NetworkNone) {
		t.Errorf("allowInternetAccess false over the claude preset made network %q", n)
	}
	var d api.SandboxDetail
	ts.call(t, "GET", "/sandboxes/"+out.SandboxID, nil, &d)
	if d.AllowInternetAccess == nil || *d.AllowInternetAccess {
		t.Errorf("get says allowInternetAccess %v", d.AllowInternetAccess)
	}
	out = ts.create(t, api.NewSandbox{TemplateID: "claude"})
	if n := ts.pod(t, out.SandboxID).Annotations[sandbox.AnnotationNetwork]; n != string(sandbox.NetworkEgress) {
		t.Errorf("the claude preset made network %q", n)
	}
}

func TestMaxSandboxes(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxSandboxes = 2 })
	first := ts.create(t, api.NewSandbox{TemplateID: "base"})
	ts.create(t, api.NewSandbox{TemplateID: "base"})
	ts.wantError(t, "POST", "/sandboxes", api.NewSandbox{TemplateID: "base"}, http.StatusTooManyRequests, "at most 2", "--max-sandboxes")
	if resp := ts.call(t, "DELETE", "/sandboxes/"+first.SandboxID, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("kill: %d", resp.StatusCode)
	}
	ts.create(t, api.NewSandbox{TemplateID: "base"})
	if ts.srv.creating != 0 {
		t.Errorf("%d creates still counted as under way", ts.srv.creating)
	}
}

func TestASandboxBeingDeletedIsGone(t *testing.T) {
	ts := newTestServer(t, nil)
	spec := sandbox.NewSpec("going-1", testNamespace)
	pod := spec.Pod()
	runPod(pod)
	pod.Finalizers = []string{"test/hold"}
	now := metav1.Now()
	pod.DeletionTimestamp = &now
	if err := ts.cs.Tracker().Add(pod); err != nil {
		t.Fatal(err)
	}
	ts.wantError(t, "DELETE", "/sandboxes/going-1", nil, http.StatusNotFound, "not found")
	ts.wantError(t, "GET", "/sandboxes/going-1", nil, http.StatusNotFound, "not found")
	if list, _ := sandbox.List(context.Background(), ts.cs, testNamespace, ""); len(list) != 1 {
		t.Fatalf("the test's pod is not there")
	}
	var page []api.ListedSandbox
	ts.call(t, "GET", "/v2/sandboxes", nil, &page)
	if len(page) != 0 {
		t.Errorf("list shows a sandbox being deleted: %+v", page)
	}
}
