package e2b

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

const (
	testNamespace = "agents"
	testKey       = "e2b_00112233445566778899aabbccddeeff"
)

// runPod gives a Pod the status of a running, ready sandbox.
func runPod(pod *corev1.Pod) {
	pod.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		StartTime:  &metav1.Time{Time: time.Now()},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}
}

// envdProbe stands in for envd: it answers with the sandbox the server
// put in the request's context.
type envdProbe struct{ got []*envd.Sandbox }

func (p *envdProbe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sb, ok := envd.SandboxFrom(r.Context())
	if !ok {
		http.Error(w, "no sandbox", http.StatusInternalServerError)
		return
	}
	p.got = append(p.got, sb)
	w.WriteHeader(http.StatusNoContent)
}

type testServer struct {
	*httptest.Server
	cs   *fake.Clientset
	srv  *Server
	envd *envdProbe
}

// newTestServer is serve over a fake cluster whose kubelet starts every
// ungated Pod; ceiling is serve's sandbox (restrictive, an hour).
func newTestServer(t *testing.T, tune func(*Options)) *testServer {
	t.Helper()
	cs := fakecluster.New()
	fakecluster.StartWhenUngated(cs, runPod)
	spec := sandbox.NewSpec("e2b", testNamespace)
	spec.TTL = time.Hour
	set, err := agents.Load("/nonexistent-agents-file", false)
	if err != nil {
		t.Fatal(err)
	}
	probe := &envdProbe{}
	o := Options{
		Namespace:    testNamespace,
		Clientset:    cs,
		Spec:         spec,
		APIKeys:      []string{testKey},
		Agents:       set,
		Envd:         probe,
		StartTimeout: 20 * time.Second,
	}
	if tune != nil {
		tune(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &testServer{Server: ts, cs: cs, srv: srv, envd: probe}
}

// call sends a control-plane request with the test key and decodes a
// JSON answer into out (if not nil); it returns the response.
func (ts *testServer) call(t *testing.T, method, path string, body any, out any) *http.Response {
	t.Helper()
	return ts.callWith(t, method, path, body, out, map[string]string{"X-API-Key": testKey})
}

func (ts *testServer) callWith(t *testing.T, method, path string, body any, out any, headers map[string]string) *http.Response {
	t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if out != nil && buf.Len() > 0 {
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			t.Fatalf("%s %s: answer %q is not JSON: %v", method, path, buf.String(), err)
		}
	}
	if e, ok := out.(*api.Error); ok && resp.StatusCode >= 400 && int(e.Code) != resp.StatusCode {
		t.Errorf("%s %s: error body's code %d differs from the status %d", method, path, e.Code, resp.StatusCode)
	}
	return resp
}

// wantError checks an answer is E2B's error shape with status and a
// message containing each of words.
func (ts *testServer) wantError(t *testing.T, method, path string, body any, status int, words ...string) {
	t.Helper()
	var e api.Error
	resp := ts.call(t, method, path, body, &e)
	checkError(t, method+" "+path, resp, &e, status, words...)
}

func checkError(t *testing.T, what string, resp *http.Response, e *api.Error, status int, words ...string) {
	t.Helper()
	if resp.StatusCode != status || int(e.Code) != status {
		t.Fatalf("%s: status %d (code %d, %q), want %d", what, resp.StatusCode, e.Code, e.Message, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	for _, w := range words {
		if !strings.Contains(e.Message, w) {
			t.Errorf("%s: message %q does not say %q", what, e.Message, w)
		}
	}
}

// create makes a sandbox and returns the answer.
func (ts *testServer) create(t *testing.T, in api.NewSandbox) api.Sandbox {
	t.Helper()
	var out api.Sandbox
	if resp := ts.call(t, "POST", "/sandboxes", in, &out); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: status %d", resp.StatusCode)
	}
	if out.SandboxID == "" || out.EnvdAccessToken == nil || *out.EnvdAccessToken == "" {
		t.Fatalf("create answered %+v: no ID or token", out)
	}
	return out
}

func (ts *testServer) pod(t *testing.T, id string) *corev1.Pod {
	t.Helper()
	pod, err := sandbox.Find(context.Background(), ts.cs, testNamespace, id)
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

func ptr[T any](v T) *T { return &v }
