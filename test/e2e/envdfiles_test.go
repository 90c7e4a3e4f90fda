package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb/filesystempbconnect"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// failingBody sends n bytes, then fails: a client that went away.
type failingBody struct{ left int }

func (b *failingBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		time.Sleep(100 * time.Millisecond)
		return 0, errors.New("client went away")
	}
	n := min(len(p), b.left)
	b.left -= n
	return n, nil
}

// TestEnvdFiles drives envd's file side through the real API server's
// exec (WebSocket, stdin closed by the protocol): an upload's end of
// stream must reach the sandbox, and a broken one must leave nothing.
func TestEnvdFiles(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	ctx := context.Background()
	h := envdOf(t, ns, "files")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	fs := filesystempbconnect.NewFilesystemClient(srv.Client(), srv.URL)
	dir := workPath(ns, "envd")
	filesURL := func(p string) string { return srv.URL + "/files?" + url.Values{"path": {p}}.Encode() }

	// 8 MiB of random bytes, streamed with no length: the two-exec path.
	content := make([]byte, 8<<20)
	_, _ = rand.Read(content)
	p := dir + "/sub/new\nline.bin"
	req, _ := http.NewRequest(http.MethodPost, filesURL(p), io.MultiReader(bytes.NewReader(content)))
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"type":"file"`) {
		t.Fatalf("upload: %d %s", res.StatusCode, body)
	}
	up := time.Since(start)
	start = time.Now()
	res, err = srv.Client().Get(filesURL(p))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("download: %d bytes of %d, %v", len(got), len(content), err)
	}
	t.Logf("8 MiB through the API server's exec: upload %v, download %v", up, time.Since(start))

	// With a length: the one-exec path.
	res, err = srv.Client().Post(filesURL(dir+"/known"), "application/octet-stream", bytes.NewReader(content[:1000]))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("upload with a length: %d", res.StatusCode)
	}

	// A broken upload over an existing file leaves it as it was.
	req, _ = http.NewRequest(http.MethodPost, filesURL(dir+"/known"), &failingBody{left: 1 << 20})
	req.Header.Set("Content-Type", "application/octet-stream")
	if res, err := srv.Client().Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("a broken upload answered %d", res.StatusCode)
	}
	listNames := func() []string {
		l, err := fs.ListDir(ctx, connect.NewRequest(&filesystempb.ListDirRequest{Path: dir, Depth: 1}))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range l.Msg.GetEntries() {
			names = append(names, e.GetName())
		}
		return names
	}
	eventually(t, 30*time.Second, "the broken upload's temporary file gone", func() bool { return len(listNames()) == 2 })
	st, err := fs.Stat(ctx, connect.NewRequest(&filesystempb.StatRequest{Path: dir + "/known"}))
	if err != nil || st.Msg.GetEntry().GetSize() != 1000 {
		t.Errorf("after a broken upload: %v, %v", st, err)
	}

	// The RPCs, and their errors in the SDK's codes.
	if _, err := fs.MakeDir(ctx, connect.NewRequest(&filesystempb.MakeDirRequest{Path: dir + "/sub"})); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Errorf("make an existing dir: %v", err)
	}
	if _, err := fs.Stat(ctx, connect.NewRequest(&filesystempb.StatRequest{Path: dir + "/missing"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("stat a missing path: %v", err)
	}
	res, err = srv.Client().Get(filesURL(dir + "/missing"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Message string `json:"message"`
		Code    int    `json:"code"`
	}
	_ = json.NewDecoder(res.Body).Decode(&e)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || e.Code != 404 || !strings.Contains(e.Message, "does not exist") {
		t.Errorf("download of a missing path: %d %+v", res.StatusCode, e)
	}

	// A watcher sees a file appear.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stream, err := fs.WatchDir(wctx, connect.NewRequest(&filesystempb.WatchDirRequest{Path: dir}))
	if err != nil || !stream.Receive() || stream.Msg().GetStart() == nil {
		t.Fatalf("watch: %v %v", err, stream.Err())
	}
	if _, err := fs.Move(ctx, connect.NewRequest(&filesystempb.MoveRequest{Source: dir + "/known", Destination: dir + "/renamed"})); err != nil {
		t.Fatal(err)
	}
	seen := map[string]filesystempb.EventType{}
	for len(seen) < 2 && stream.Receive() {
		if ev := stream.Msg().GetFilesystem(); ev != nil {
			seen[ev.GetName()] = ev.GetType()
		}
	}
	if seen["known"] != filesystempb.EventType_EVENT_TYPE_RENAME || seen["renamed"] != filesystempb.EventType_EVENT_TYPE_CREATE {
		t.Errorf("watch saw %v (%v)", seen, stream.Err())
	}
}

// envdOf creates sandbox name in ns and returns envd's handler with that
// sandbox in every request's context, as serve puts it there.
func envdOf(t *testing.T, ns, name string) http.Handler {
	t.Helper()
	createSandbox(t, ns, name)
	cfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := sandbox.Find(context.Background(), env.cs, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	sb := &envd.Sandbox{ID: name, Namespace: ns, Exec: sandbox.NewPodExec(cfg, env.cs.CoreV1().RESTClient(), sandbox.RemoteExecutor{}, pod)}
	h := envd.NewHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(envd.WithSandbox(r.Context(), sb)))
	})
}
