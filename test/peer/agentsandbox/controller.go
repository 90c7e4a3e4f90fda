package agentsandbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// Controller is agent-sandbox's controller running on the host.
type Controller struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when it has exited, with why in err
	err    error
}

// ControllerArgs are the controller's flags here: its extensions on (warm
// pools, templates, claims) as agent-sandbox's all-in-one install turns
// them on; one replica, so no leader election; metrics off and the health
// probe on loopback, so nothing listens beyond this machine. The worker
// counts, batch size and client rate are the controller's defaults.
func ControllerArgs(probePort int) []string {
	return []string{
		"--extensions",
		"--leader-elect=false",
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
	}
}

// Start runs the controller as agent-sandbox's ServiceAccount (a token
// from the TokenRequest API, in a kubeconfig of its own under dir), so it
// has exactly the RBAC its install grants. adminKubeconfig names the
// cluster; cfg is an admin client of it. Its log goes to log. Start returns
// once the controller answers its readiness probe.
func (p *Peer) Start(ctx context.Context, cfg *restclient.Config, adminKubeconfig, dir string, log io.Writer) (*Controller, error) {
	kubeconfig, err := serviceAccountKubeconfig(ctx, cfg, adminKubeconfig, dir)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(p.Controller, append(ControllerArgs(port), "--kubeconfig", kubeconfig)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start agent-sandbox's controller %s: %w", p.Controller, err)
	}
	c := &Controller{cmd: cmd, exited: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.exited) }()
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	for deadline := time.Now().Add(time.Minute); ; {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("agent-sandbox's controller exited before it was ready (%v); see its log", c.err)
		case <-ctx.Done():
			c.Stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("agent-sandbox's controller is not ready after a minute (%s); see its log", url)
		}
	}
}

// Stop ends the controller (SIGTERM, then SIGKILL after 10 s).
func (c *Controller) Stop() {
	if c == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// serviceAccountKubeconfig writes a kubeconfig for agent-sandbox's
// ServiceAccount: the admin kubeconfig's cluster with a bound token.
func serviceAccountKubeconfig(ctx context.Context, cfg *restclient.Config, adminKubeconfig, dir string) (string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	tr, err := cs.CoreV1().ServiceAccounts(SystemNamespace).CreateToken(ctx, ServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(24 * 3600))}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("a token for agent-sandbox's ServiceAccount %s/%s (is it installed?): %w", SystemNamespace, ServiceAccount, err)
	}
	admin, err := clientcmd.LoadFromFile(adminKubeconfig)
	if err != nil {
		return "", err
	}
	ctxName := admin.CurrentContext
	kc, ok := admin.Contexts[ctxName]
	if !ok {
		return "", fmt.Errorf("%s has no current context", adminKubeconfig)
	}
	out := clientcmdapi.NewConfig()
	out.Clusters[kc.Cluster] = admin.Clusters[kc.Cluster]
	out.AuthInfos[ServiceAccount] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	out.Contexts[ServiceAccount] = &clientcmdapi.Context{Cluster: kc.Cluster, AuthInfo: ServiceAccount}
	out.CurrentContext = ServiceAccount
	path := filepath.Join(dir, "agent-sandbox-controller.kubeconfig")
	if err := clientcmd.WriteToFile(*out, path); err != nil {
		return "", err
	}
	return path, os.Chmod(path, 0o600)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
