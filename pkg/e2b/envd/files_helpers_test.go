package envd

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/filesystempb/filesystempbconnect"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// hostExec stands in for the API server's exec endpoint: it runs the
// requested command on this machine (paths in the tests are those of a
// temporary directory standing for the sandbox), with the host's tools or
// only busybox's.
type hostExec struct {
	path string // PATH of the command; "" is the test's own

	mu    sync.Mutex
	execs int
}

func (h *hostExec) ExecuteWithContext(ctx context.Context, u *url.URL, _ *restclient.Config, stdin io.Reader, stdout, stderr io.Writer, tty bool, _ remotecommand.TerminalSizeQueue) error {
	h.mu.Lock()
	h.execs++
	h.mu.Unlock()
	command := u.Query()["command"]
	if tty {
		return errors.New("envd's file side never asks for a terminal")
	}
	name := command[0]
	env := os.Environ()
	if h.path != "" {
		name = filepath.Join(h.path, name)
		env = []string{"PATH=" + h.path}
	}
	c := exec.CommandContext(ctx, name, command[1:]...)
	c.Env = env
	c.Stdout, c.Stderr = stdout, stderr
	c.WaitDelay = time.Second
	return testexec.RunLikeExec(ctx, c, stdin)
}

func (h *hostExec) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.execs
}

// shells are the sandboxes the tests run against: the host's sh (dash)
// with GNU coreutils and findutils, and busybox alone.
func shells(t *testing.T) map[string]string {
	out := map[string]string{"host tools": ""}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Log("busybox is not installed (apt-get install busybox-static): testing the host's tools only")
		return out
	}
	dir := t.TempDir()
	for _, applet := range []string{"sh", "find", "stat", "readlink", "cat", "head", "mkdir", "mv", "rm", "rmdir", "wc", "chmod", "test", "["} {
		if err := os.Symlink(bb, filepath.Join(dir, applet)); err != nil {
			t.Fatal(err)
		}
	}
	out["busybox"] = dir
	return out
}

// envdFixture is envd's handler behind an HTTP server, for one sandbox.
type envdFixture struct {
	url     string
	client  *http.Client
	fs      filesystempbconnect.FilesystemClient
	h       *Handler
	exec    *hostExec
	sandbox *Sandbox
	dir     string // a temporary directory: the sandbox's files
}

func startEnvd(t testing.TB, toolPath string) *envdFixture {
	t.Helper()
	rest, err := restclient.RESTClientFor(&restclient.Config{
		Host:    "https://cluster.invalid",
		APIPath: "/api",
		ContentConfig: restclient.ContentConfig{
			GroupVersion:         &corev1.SchemeGroupVersion,
			NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ex := &hostExec{path: toolPath}
	sb := &Sandbox{ID: "sb", Namespace: "agents", Exec: &sandbox.PodExec{
		Config: &restclient.Config{Host: "https://cluster.invalid"}, Client: rest, Executor: ex, Namespace: "agents", Pod: "sb",
	}}
	h := NewHandler()
	h.files.watchers.interval = 100 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(WithSandbox(r.Context(), sb)))
	}))
	t.Cleanup(srv.Close)
	return &envdFixture{
		url: srv.URL, client: srv.Client(), h: h, exec: ex, sandbox: sb, dir: t.TempDir(),
		fs: filesystempbconnect.NewFilesystemClient(srv.Client(), srv.URL),
	}
}

// path is name inside the fixture's directory.
func (f *envdFixture) path(name string) string { return filepath.Join(f.dir, name) }
