package envd

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"

	"connectrpc.com/connect"
	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd/gen/processpb/processpbconnect"
	"github.com/agentkernel/kubectl-agentkernel/pkg/procs"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// hostExecutor stands in for the API server's exec endpoint: it runs the
// requested command on this machine (in a terminal when asked), so the
// sandbox-side scripts of package procs really run. The directories of
// procs are the test's own (dir, out replace procs.Dir and OutputDir).
type hostExecutor struct {
	dir, out string
	// slow is how long each exec takes to start, as on a busy node.
	slow time.Duration
	// execs counts the execs.
	execs atomic.Int32
}

func (h *hostExecutor) ExecuteWithContext(ctx context.Context, u *url.URL, _ *restclient.Config, stdin io.Reader, stdout, stderr io.Writer, tty bool, sizes remotecommand.TerminalSizeQueue) error {
	h.execs.Add(1)
	select {
	case <-time.After(h.slow):
	case <-ctx.Done():
		return ctx.Err()
	}
	command := u.Query()["command"]
	// The sandbox's directories become the test's.
	for i, a := range command {
		switch a {
		case procs.Dir:
			command[i] = h.dir
		case procs.OutputDir:
			command[i] = h.out
		}
	}
	c := exec.CommandContext(ctx, command[0], command[1:]...)
	c.Env = os.Environ()
	c.WaitDelay = time.Second
	if tty {
		f, err := pty.Start(c)
		if err != nil {
			return err
		}
		defer f.Close()
		if sizes != nil {
			go func() {
				for s := sizes.Next(); s != nil; s = sizes.Next() {
					_ = pty.Setsize(f, &pty.Winsize{Cols: s.Width, Rows: s.Height})
				}
			}()
		}
		if stdin != nil {
			go func() { _, _ = io.Copy(f, stdin) }()
		}
		copied := make(chan struct{})
		go func() { _, _ = io.Copy(stdout, f); close(copied) }()
		err = c.Wait()
		select {
		case <-copied:
		case <-time.After(time.Second):
		}
		return testexec.ExitError(ctx, err)
	}
	c.Stdout, c.Stderr = stdout, stderr
	return testexec.RunLikeExec(ctx, c, stdin)
}

// server is envd's handler behind an httptest server that puts a sandbox
// whose exec runs on this machine in every request's context, and a
// Process client of it (with opts: connect.WithProtoJSON() speaks JSON,
// as the SDK does).
func server(t *testing.T, opts ...connect.ClientOption) processpbconnect.ProcessClient {
	t.Helper()
	c, _ := slowServer(t, 0, opts...)
	return c
}

// slowServer is server whose execs each take slow to start, and its
// stand-in for the exec endpoint.
func slowServer(t *testing.T, slow time.Duration, opts ...connect.ClientOption) (processpbconnect.ProcessClient, *hostExecutor) {
	t.Helper()
	base := t.TempDir()
	ex := &hostExecutor{dir: filepath.Join(base, "run"), out: filepath.Join(base, "tmp"), slow: slow}
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
	sb := &Sandbox{ID: "sb1", Namespace: "ns", Exec: &sandbox.PodExec{Config: &restclient.Config{}, Client: rest, Executor: ex, Namespace: "ns", Pod: "sb1"}}
	h := NewHandler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(WithSandbox(r.Context(), sb)))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		// Kill what the test left running, then stop serving.
		p := &procs.Procs{Exec: sb.Exec, Dir: ex.dir, OutputDir: ex.out}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		all, _ := p.List(ctx)
		for _, q := range all {
			if q.State == procs.Running {
				_ = p.Signal(ctx, procs.Selector{PID: q.PID}, procs.SIGKILL)
				_, _, _ = p.Follow(ctx, procs.Selector{PID: q.PID}, procs.Offsets{}, func(procs.Chunk) error { return nil })
			}
		}
		srv.Close()
	})
	return processpbconnect.NewProcessClient(srv.Client(), srv.URL, opts...), ex
}
