package e2b

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// EnvdPort is the port the SDK names (E2b-Sandbox-Port) for envd.
const EnvdPort = 49983

// DefaultEnvdVersion is the envd version serve reports: the SDK picks its
// wire formats by it (src/envd/versions.ts).
const DefaultEnvdVersion = "0.5.7"

// Options configure a Server.
type Options struct {
	Namespace  string
	Clientset  kubernetes.Interface
	Config     *restclient.Config
	RESTClient restclient.Interface // Clientset.CoreV1().RESTClient() if nil
	Executor   sandbox.Executor

	// Spec is every new sandbox's defaults and the ceiling of what a
	// request or a pool may give it (sandbox.Within). Its TTL is the
	// longest timeout a request may ask for.
	Spec sandbox.Spec
	// SecretValues are the values of Spec.SecretEnvNames.
	SecretValues map[string]string
	// SecretEnvPatterns name (path.Match globs) the envVars of a request
	// whose values go into the sandbox's Secret rather than its Pod spec.
	SecretEnvPatterns []string
	// DefaultPool, if set, is the warm pool a request for E2B's default
	// template ("base") claims from.
	DefaultPool string
	// Agents are the presets a templateID may name.
	Agents *agents.Set
	// APIKeys are the keys the control plane accepts.
	APIKeys []string
	// MaxSandboxes is the most running sandboxes serve's creates may have
	// at once (0: no limit): a key that leaks cannot fill the cluster.
	MaxSandboxes int
	// StartTimeout bounds the wait for a new sandbox.
	StartTimeout time.Duration
	// Envd answers a sandbox's envd requests (envd.NewHandler()).
	Envd http.Handler
	// EnvdVersion is the envd version reported; DefaultEnvdVersion if "".
	EnvdVersion string
	// Prepare is sandbox.CreateOptions.Prepare: the namespace's egress
	// proxy for a sandbox fenced by host name.
	Prepare func(ctx context.Context, spec *sandbox.Spec) error
	// Now is the clock of sandboxes' E2B ends; time.Now if nil.
	Now func() time.Time
	Log *slog.Logger
}

// Server is serve's one handler.
type Server struct {
	o       Options
	keys    *keyring
	control http.Handler
	// refills are pool claims' replacements still being made.
	refills sync.WaitGroup
	// admitting serialises MaxSandboxes' count; creating is how many
	// admitted creates have not finished.
	admitting sync.Mutex
	creating  int
}

// maxBody bounds a control-plane request body: the largest the SDK sends
// (a sandbox with its metadata, envVars and network rules) is a few KiB.
const maxBody = 1 << 20

// New returns the server of o.
func New(o Options) (*Server, error) {
	if o.Clientset == nil || o.Namespace == "" {
		return nil, errors.New("e2b.New needs a clientset and a namespace")
	}
	if len(o.APIKeys) == 0 {
		return nil, errors.New("e2b.New needs at least one API key")
	}
	for _, p := range o.SecretEnvPatterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("secret env pattern %q is not a glob: %w", p, err)
		}
	}
	if o.RESTClient == nil {
		o.RESTClient = o.Clientset.CoreV1().RESTClient()
	}
	if o.EnvdVersion == "" {
		o.EnvdVersion = DefaultEnvdVersion
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Envd == nil {
		o.Envd = envd.NewHandler()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 5 * time.Minute
	}
	s := &Server{o: o, keys: newKeyring(o.APIKeys)}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, errorf(http.StatusNotFound, "%s %.200s is not an operation serve answers", r.Method, r.URL.Path))
	})
	s.control = api.HandlerWithOptions(s, api.StdHTTPServerOptions{
		BaseRouter: mux,
		ErrorHandlerFunc: func(w http.ResponseWriter, _ *http.Request, err error) {
			s.writeError(w, errorf(http.StatusBadRequest, "%v", err))
		},
	})
	return s, nil
}

// Wait waits for the replacements of the pool claims made so far.
func (s *Server) Wait() { s.refills.Wait() }

// ServeHTTP sends a request that names a sandbox to envd, any other to the
// control plane; each authenticated its own way.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id := r.Header.Get("E2b-Sandbox-Id"); id != "" {
		s.serveEnvd(w, r, id)
		return
	}
	if !s.keys.validKey(r.Header.Get("X-API-Key")) {
		s.writeError(w, errorf(http.StatusUnauthorized, "missing or wrong X-API-Key: use a key serve printed (E2B_API_KEY) or one of its --api-key-file"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.control.ServeHTTP(w, r)
}

// serveEnvd authenticates a request for sandbox id's envd by its access
// token and hands it to envd with the sandbox in its context.
func (s *Server) serveEnvd(w http.ResponseWriter, r *http.Request, id string) {
	if port := r.Header.Get("E2b-Sandbox-Port"); port != "" && port != strconv.Itoa(EnvdPort) {
		s.writeError(w, errorf(http.StatusBadGateway, "serve answers only envd (port %d) of a sandbox, not port %.20q; reach a sandbox's own ports with: kubectl agentkernel port-forward -n %s %s PORT", EnvdPort, port, s.o.Namespace, id))
		return
	}
	if err := sandbox.ValidateName(id); err != nil {
		s.writeError(w, errorf(http.StatusBadGateway, "sandbox %.80q not found: no sandbox has that ID", id))
		return
	}
	pod, err := sandbox.Find(r.Context(), s.o.Clientset, s.o.Namespace, id)
	if err != nil {
		// envd's proxy answers 502 for a sandbox that is not there: the
		// SDK's "sandbox timed out or was killed".
		e := asError(err)
		if e.Status == http.StatusNotFound {
			e.Status = http.StatusBadGateway
		}
		s.writeError(w, e)
		return
	}
	uid, err := s.identity(r.Context(), pod)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if !s.keys.validToken(r.Header.Get("X-Access-Token"), s.o.Namespace, id, uid) {
		s.writeError(w, errorf(http.StatusUnauthorized, "missing or wrong X-Access-Token for sandbox %s: use the envdAccessToken create or connect returned", id))
		return
	}
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		s.writeError(w, errorf(http.StatusBadGateway, "sandbox %s is not running (%s)", id, sandbox.Status(pod)))
		return
	}
	sb := &envd.Sandbox{
		ID:        id,
		Namespace: s.o.Namespace,
		Exec:      sandbox.NewPodExec(s.o.Config, s.o.RESTClient, s.o.Executor, pod),
	}
	s.o.Envd.ServeHTTP(w, r.WithContext(envd.WithSandbox(r.Context(), sb)))
}

// identity is the UID a sandbox's access token is bound to: its Pod's, or
// for a persistent sandbox its workspace's, which outlives the Pods that a
// pause and a resume replace.
func (s *Server) identity(ctx context.Context, pod *corev1.Pod) (string, error) {
	if !sandbox.IsPersistent(pod) {
		return string(pod.UID), nil
	}
	pvc, err := sandbox.FindWorkspace(ctx, s.o.Clientset, s.o.Namespace, sandbox.NameOf(pod))
	if err != nil {
		return "", err
	}
	return string(pvc.UID), nil
}
