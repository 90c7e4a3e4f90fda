package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Options for Up.
type Options struct {
	// Dir is the state directory; "" makes a fresh one with os.MkdirTemp,
	// which Down removes. A given Dir is kept by Down (logs stay readable);
	// Up clears the state of an earlier cluster there.
	Dir string
	// Kwok starts the simulated node. Without it only the control plane
	// runs (a real node may join later with certificates from PKIDir).
	Kwok bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Detach keeps the cluster running after the calling process exits
	// (the CLI's `up`); stop it with Attach(Dir) and Down. Without it every
	// component gets SIGKILL when the caller dies, so a test that times out
	// or panics before Down leaves nothing behind.
	Detach bool
	// Profiling serves the API server's /debug/pprof (to system:masters),
	// for the bench's profile of where its CPU goes; off otherwise, as a
	// hardened API server would be.
	Profiling bool
}

// Cluster is a running control plane. Its string fields are plain paths and
// URLs so that a test can hand them to kubectl or client-go directly.
type Cluster struct {
	Dir               string
	Server            string // https://127.0.0.1:PORT
	AdminKubeconfig   string // user e2e-admin, group system:masters
	LimitedKubeconfig string // user and group e2e-limited, no RBAC: tests bind roles as they need
	PKIDir            string // ca.crt, ca.key, ... (a real node mints its kubelet cert from ca.*)
	NodeName          string // the kwok node ("" without kwok)
	// KwokWorkDir is the base under which kwok's exec'd commands run: pod
	// P in namespace N runs in KwokWorkDir/N/P. It is KwokWorkDirBase, a
	// path inside kwok's private mount namespace (see SandboxPath); "" without kwok.
	KwokWorkDir string
	// Binaries the cluster runs (kubectl among them).
	Binaries *Binaries

	procs  []*proc
	ready  bool // false while Up is still starting components
	ownDir bool // Up made Dir itself, so Down removes it

	mu      sync.Mutex
	stopped bool
}

// clusterState is Dir/cluster.json.
type clusterState struct {
	Dir               string    `json:"dir"`
	Server            string    `json:"server"`
	AdminKubeconfig   string    `json:"adminKubeconfig"`
	LimitedKubeconfig string    `json:"limitedKubeconfig"`
	PKIDir            string    `json:"pkiDir"`
	NodeName          string    `json:"nodeName"`
	KwokWorkDir       string    `json:"kwokWorkDir"`
	Binaries          *Binaries `json:"binaries"`
	Processes         []*proc   `json:"processes"`
	Ready             bool      `json:"ready"`
	OwnDir            bool      `json:"ownDir"`
}

// State-dir layout. Everything the harness writes is under Cluster.Dir.
const (
	stateFile             = "cluster.json"
	adminKubeconfigFile   = "admin.kubeconfig"
	limitedKubeconfigFile = "e2e-limited.kubeconfig"
	cmKubeconfigFile      = "controller-manager.kubeconfig"
	schedKubeconfigFile   = "scheduler.kubeconfig"
	pkiSubdir             = "pki"
	etcdSubdir            = "etcd"
	logsSubdir            = "logs"
	kwokSubdir            = "kwok"
)

// DefaultNodeName is the name of the kwok node.
const DefaultNodeName = "kwok-node"

// ServiceCIDR is the cluster's service IP range; 10.0.0.1 is the
// `kubernetes` Service.
const ServiceCIDR = "10.0.0.0/24"

// PIDs returns the process IDs Up started (each leads its own process group).
func (c *Cluster) PIDs() []int {
	var pids []int
	for _, p := range c.procs {
		pids = append(pids, p.PID)
	}
	return pids
}

// KwokPID returns the PID of the kwok process, 0 without kwok.
func (c *Cluster) KwokPID() int {
	for _, p := range c.procs {
		if p.Name == "kwok" {
			return p.PID
		}
	}
	return 0
}

// SandboxPath maps an absolute path as the sandbox sees it (/workspace/x,
// /tmp/y, KwokWorkDir/ns/pod) to a host path that reads the same file,
// through /proc/<kwok pid>/root. Root (or the user who ran Up) can read it.
func (c *Cluster) SandboxPath(p string) (string, error) {
	pid := c.KwokPID()
	if pid == 0 {
		return "", errors.New("this cluster has no kwok node")
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("sandbox path %q is not absolute", p)
	}
	return filepath.Join("/proc", strconv.Itoa(pid), "root", p), nil
}

// Up starts a cluster and returns when the API is ready, the `default`
// ServiceAccount exists and (with Kwok) the node is Ready. If any step
// fails, everything already started is stopped and the error names the
// component with the end of its log (logs stay in Dir/logs).
func Up(ctx context.Context, b *Binaries, o Options) (_ *Cluster, err error) {
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if b == nil {
		return nil, errors.New("localcluster.Up: nil Binaries; call Build first")
	}
	start := time.Now()
	asRoot := os.Geteuid() == 0

	c := &Cluster{Binaries: b}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "kubectl-agentkernel-cluster-")
		if err != nil {
			return nil, err
		}
		c.Dir, c.ownDir = dir, true
	} else {
		dir, err := filepath.Abs(o.Dir)
		if err != nil {
			return nil, err
		}
		c.Dir = dir
		if err := prepareGivenDir(dir); err != nil {
			return nil, err
		}
	}
	// Only we may enter Dir; kwok starts inside Dir/kwok (see kwokSandboxScript).
	if err := os.Chmod(c.Dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if stopErr := stopProcs(c.procs, 10*time.Second); stopErr != nil {
				err = fmt.Errorf("%w\nalso, cleaning up: %v", err, stopErr)
			}
			c.procs = nil
			_ = c.save()
			err = fmt.Errorf("%w\n(state and logs kept in %s)", err, c.Dir)
		}
	}()

	c.PKIDir = filepath.Join(c.Dir, pkiSubdir)
	logs := filepath.Join(c.Dir, logsSubdir)
	for _, d := range []string{c.PKIDir, logs, filepath.Join(c.Dir, etcdSubdir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if o.Kwok {
		c.NodeName = DefaultNodeName
		c.KwokWorkDir = KwokWorkDirBase
		if err := ensureMountPoints(asRoot); err != nil {
			return nil, err
		}
	}

	ports, err := FreePorts(4)
	if err != nil {
		return nil, err
	}
	etcdPort, etcdPeerPort, apiPort, kwokPort := ports[0], ports[1], ports[2], ports[3]
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	now := time.Now()
	nodeName := c.NodeName
	if nodeName == "" {
		nodeName = DefaultNodeName
	}
	if _, err := writePKI(c.PKIDir, nodeName, now); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	pki := func(name string) string { return filepath.Join(c.PKIDir, name) }
	c.AdminKubeconfig = filepath.Join(c.Dir, adminKubeconfigFile)
	c.LimitedKubeconfig = filepath.Join(c.Dir, limitedKubeconfigFile)
	for _, k := range []struct{ path, user, cert string }{
		{c.AdminKubeconfig, "e2e-admin", adminName},
		{c.LimitedKubeconfig, LimitedUser, limitedName},
		{filepath.Join(c.Dir, cmKubeconfigFile), "kube-controller-manager", controllerManagerName},
		{filepath.Join(c.Dir, schedKubeconfigFile), "kube-scheduler", schedulerName},
	} {
		if err := writeKubeconfig(k.path, c.Server, k.user, pki(caName+".crt"), pki(k.cert+".crt"), pki(k.cert+".key")); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(log, "up: state in %s, API %s\n", c.Dir, c.Server)

	env := componentEnv()
	startComponent := func(name string, argv []string, env []string, dir string) (*proc, error) {
		p, err := startProc(name, argv, env, filepath.Join(logs, name+".log"), dir, o.Detach)
		if err != nil {
			return nil, err
		}
		c.procs = append(c.procs, p)
		// Recorded at once, so `down` can stop a half-started cluster even if
		// this process is killed.
		if err := c.save(); err != nil {
			return nil, err
		}
		return p, nil
	}

	// etcd: client TLS with certificate auth, so that a command exec'd in a
	// sandbox (same host network) cannot read or write the cluster's storage.
	etcdURL := fmt.Sprintf("https://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort)
	etcd, err := startComponent("etcd", []string{b.Etcd,
		"--name=default",
		"--data-dir=" + filepath.Join(c.Dir, etcdSubdir),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--initial-cluster-state=new",
		"--cert-file=" + pki(etcdServerName+".crt"),
		"--key-file=" + pki(etcdServerName+".key"),
		"--client-cert-auth=true",
		"--trusted-ca-file=" + pki(caName+".crt"),
		// A test cluster: losing the last writes on a host crash is fine,
		// waiting for fsync on every write is not.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}, env, "/")
	if err != nil {
		return nil, err
	}
	httpClient, err := tlsClient(pki(caName+".crt"), pki(apiServerEtcdClientName+".crt"), pki(apiServerEtcdClientName+".key"))
	if err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, etcd, httpClient, etcdURL+"/health", 60*time.Second, func(body string) bool {
		return strings.Contains(body, `"health":"true"`)
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "up: etcd ready (%s)\n", time.Since(start).Round(time.Millisecond))

	apiArgs := []string{b.APIServer,
		"--etcd-servers=" + etcdURL,
		"--etcd-cafile=" + pki(caName+".crt"),
		"--etcd-certfile=" + pki(apiServerEtcdClientName+".crt"),
		"--etcd-keyfile=" + pki(apiServerEtcdClientName+".key"),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + pki(apiServerName+".crt"),
		"--tls-private-key-file=" + pki(apiServerName+".key"),
		"--client-ca-file=" + pki(caName+".crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki(serviceAccountPubFile),
		"--service-account-signing-key-file=" + pki(serviceAccountKeyFile),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		// PodSecurity is on by default; NodeRestriction is for a real node
		// that joins with a system:node:<name> certificate.
		"--enable-admission-plugins=NodeRestriction",
		// Without it a privileged pod fails validation before PodSecurity
		// admission can reject it with "violates PodSecurity".
		"--allow-privileged=true",
		"--kubelet-client-certificate=" + pki(apiServerKubeletName+".crt"),
		"--kubelet-client-key=" + pki(apiServerKubeletName+".key"),
		"--kubelet-certificate-authority=" + pki(caName+".crt"),
		// The default tries the node's Hostname first, which means a DNS
		// query off the machine; kwok's node (and a real node) are reached
		// by IP.
		"--kubelet-preferred-address-types=InternalIP",
		// The default reconciler would publish the advertise address in the
		// `kubernetes` Endpoints; keep the Service free of it.
		"--endpoint-reconciler-type=none",
		"--profiling=" + strconv.FormatBool(o.Profiling),
	}
	api, err := startComponent("kube-apiserver", apiArgs, env, "/")
	if err != nil {
		return nil, err
	}
	adminHTTP, err := tlsClient(pki(caName+".crt"), pki(adminName+".crt"), pki(adminName+".key"))
	if err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, api, adminHTTP, c.Server+"/readyz", 120*time.Second, func(body string) bool {
		return strings.TrimSpace(body) == "ok"
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "up: kube-apiserver ready (%s)\n", time.Since(start).Round(time.Millisecond))

	restConfig, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}

	// Only now: the controller-manager gives up on an apiserver that is not
	// healthy within 10 s, which a loaded 2-core machine can exceed.
	if _, err := startComponent("kube-controller-manager", []string{b.ControllerManager,
		"--kubeconfig=" + filepath.Join(c.Dir, cmKubeconfigFile),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		// No metrics/health endpoint: nothing needs it, and a fixed default
		// port (10257) would keep two clusters from running side by side.
		"--secure-port=0",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + pki(serviceAccountKeyFile),
		"--root-ca-file=" + pki(caName+".crt"),
		"--cluster-signing-cert-file=" + pki(caName+".crt"),
		"--cluster-signing-key-file=" + pki(caName+".key"),
		"--service-cluster-ip-range=" + ServiceCIDR,
	}, env, "/"); err != nil {
		return nil, err
	}
	if _, err := startComponent("kube-scheduler", []string{b.Scheduler,
		"--kubeconfig=" + filepath.Join(c.Dir, schedKubeconfigFile),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
	}, env, "/"); err != nil {
		return nil, err
	}

	var kwok *proc
	if o.Kwok {
		if err := c.prepareKwok(ctx, client, kwokPort, asRoot); err != nil {
			return nil, fmt.Errorf("kwok: %w", err)
		}
		kwok, err = startComponent("kwok", kwokCommand(asRoot, o.Detach), kwokEnv(), filepath.Join(c.Dir, kwokSubdir))
		if err != nil {
			return nil, err
		}
	}

	// Wait for what tests need; a component that dies meanwhile is reported
	// by name rather than as a timeout.
	if err := c.waitFor(ctx, 90*time.Second, "the default ServiceAccount in namespace default", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "up: default ServiceAccount present (%s)\n", time.Since(start).Round(time.Millisecond))
	if kwok != nil {
		if err := c.waitFor(ctx, 90*time.Second, fmt.Sprintf("node %s to be Ready", c.NodeName), func(ctx context.Context) (bool, error) {
			node, err := client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return nodeReady(node), nil
		}); err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "up: node %s Ready (%s)\n", c.NodeName, time.Since(start).Round(time.Millisecond))
		// kwok has read its credentials; sandboxed commands run as kwok's
		// uid and see Dir/kwok as /run/kwok, so take the cluster-admin
		// kubeconfig and the serving key out of their reach.
		for _, f := range kwokSecretFiles {
			if err := os.Remove(filepath.Join(c.Dir, kwokSubdir, f)); err != nil {
				return nil, fmt.Errorf("kwok: %w", err)
			}
		}
	}

	c.ready = true
	if err := c.save(); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "up: cluster ready in %s\n", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// nodeReady: Ready=True and free of the controller's not-ready and
// unreachable taints, so the next pod schedules at once.
func nodeReady(node *corev1.Node) bool {
	ready := false
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	for _, t := range node.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	return ready
}

// prepareKwok writes Dir/kwok (config, kubeconfig, serving certificate, a
// copy of the kwok binary and the e2e-notar PATH), grants kwok's identity
// cluster-admin and registers the Node kwok will manage.
func (c *Cluster) prepareKwok(ctx context.Context, client kubernetes.Interface, port int, asRoot bool) error {
	dir := filepath.Join(c.Dir, kwokSubdir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	stages, err := os.ReadFile(filepath.Join(c.Binaries.Dir, kwokStagesFile))
	if err != nil {
		return fmt.Errorf("kwok's default stages are missing from the build (%w); rebuild with: go run ./test/cluster build", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kwok.yaml"), []byte(kwokConfig(kwokConfigInput{
		NodeName: c.NodeName, Port: port, Stages: string(stages),
	})), 0o600); err != nil {
		return err
	}
	for src, dst := range map[string]string{
		kwokServingName + ".crt": "tls.crt",
		kwokServingName + ".key": "tls.key",
	} {
		if err := copyFile(filepath.Join(c.PKIDir, src), filepath.Join(dir, dst), 0o600); err != nil {
			return err
		}
	}
	// Embedded credentials: the PKI dir is out of kwok's reach.
	if err := writeKubeconfig(filepath.Join(dir, "kubeconfig"), c.Server, kwokControllerUser,
		filepath.Join(c.PKIDir, caName+".crt"),
		filepath.Join(c.PKIDir, kwokClientName+".crt"),
		filepath.Join(c.PKIDir, kwokClientName+".key")); err != nil {
		return err
	}
	// A copy, because the build cache under $HOME is usually not readable
	// by kwok's uid.
	if err := copyFile(c.Binaries.Kwok, filepath.Join(dir, "kwok"), 0o755); err != nil {
		return err
	}
	if err := writeNoTarBin(filepath.Join(dir, "notar-bin")); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "container.log"), []byte(containerLog), 0o600); err != nil {
		return err
	}
	if asRoot {
		if err := chownTree(dir, SandboxUID, SandboxUID); err != nil {
			return err
		}
	}

	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e:kwok-controller"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: kwokControllerUser}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, err = client.CoreV1().Nodes().Create(ctx, kwokNode(c.NodeName, port), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// kwokSecretFiles are removed from Dir/kwok once kwok has read them.
var kwokSecretFiles = []string{"kubeconfig", "tls.key"}

// kwokNode is the Node object kwok manages (it selects it by annotation).
func kwokNode(name string, port int) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokNodeAnnotationKey: kwokNodeAnnotationValue, "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
				{Type: corev1.NodeHostName, Address: name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
			// kwok's default capacity has no ephemeral-storage, so pods that
			// request it (every sandbox does) would never be scheduled.
			Capacity:    kwokNodeResources(),
			Allocatable: kwokNodeResources(),
		},
	}
}

func kwokNodeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("64"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
		corev1.ResourcePods:             resource.MustParse("1000"),
	}
}

// waitFor polls cond every 100 ms until it holds, a component exits, or
// the timeout passes.
func (c *Cluster) waitFor(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		for _, p := range c.procs {
			if done, err := p.exited(); done {
				return componentError(p, "exited (%v) while waiting for %s", err, what)
			}
		}
		callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := cond(callCtx)
		callCancel()
		if ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("timed out after %s waiting for %s", timeout, what)
			if lastErr != nil {
				msg += fmt.Sprintf(" (last error: %v)", lastErr)
			}
			// The likeliest culprit is the last component started.
			if n := len(c.procs); n > 0 {
				return componentError(c.procs[n-1], "%s", msg)
			}
			return errors.New(msg)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitHTTP polls url, served by p, until ok(body) on a 200, timeout, or
// any process of c exits.
func (c *Cluster) waitHTTP(ctx context.Context, p *proc, client *http.Client, url string, timeout time.Duration, ok func(string) bool) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		for _, q := range c.procs {
			if done, err := q.exited(); done {
				return componentError(q, "exited (%v) before %s answered", err, url)
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && ok(string(body)) {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %.300s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return componentError(p, "not ready after %s: %s answered %s", timeout, url, last)
		}
		select {
		case <-ctx.Done():
			return componentError(p, "interrupted while waiting for %s: %v", url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tlsClient makes an HTTPS client that trusts caFile and presents cert/key.
func tlsClient(caFile, certFile, keyFile string) (*http.Client, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		},
	}, nil
}

// Down stops every process Up started, last started first: SIGTERM to its
// whole process group (kwok's group holds the commands it exec'd), SIGKILL
// after 15 s, and waits until they are gone. It removes Dir only if Up
// created it; a Dir given in Options is kept. Down is idempotent.
func (c *Cluster) Down() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	err := stopProcs(c.procs, 15*time.Second)
	if err != nil {
		return err
	}
	c.stopped = true
	c.ready = false
	if c.ownDir {
		return os.RemoveAll(c.Dir)
	}
	c.procs = nil
	return c.save()
}

// Attach loads the cluster that `up` (or Up with a Dir) recorded in dir, so
// that it can be used or stopped from another process.
func Attach(dir string) (*Cluster, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no cluster state in %s (start one with: go run ./test/cluster up --dir %s)", dir, dir)
		}
		return nil, err
	}
	var st clusterState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &Cluster{
		Dir: st.Dir, Server: st.Server, AdminKubeconfig: st.AdminKubeconfig, LimitedKubeconfig: st.LimitedKubeconfig,
		PKIDir: st.PKIDir, NodeName: st.NodeName, KwokWorkDir: st.KwokWorkDir, Binaries: st.Binaries,
		procs: st.Processes, ready: st.Ready, ownDir: st.OwnDir,
	}, nil
}

// Running reports whether every recorded process is still alive.
func (c *Cluster) Running() error {
	if len(c.procs) == 0 {
		return fmt.Errorf("cluster in %s is not running", c.Dir)
	}
	for _, p := range c.procs {
		if !p.alive() {
			return fmt.Errorf("cluster in %s: %s (pid %d) is not running; see %s", c.Dir, p.Name, p.PID, p.Log)
		}
	}
	return nil
}

func (c *Cluster) save() error {
	b, err := json.MarshalIndent(clusterState{
		Dir: c.Dir, Server: c.Server, AdminKubeconfig: c.AdminKubeconfig, LimitedKubeconfig: c.LimitedKubeconfig,
		PKIDir: c.PKIDir, NodeName: c.NodeName, KwokWorkDir: c.KwokWorkDir, Binaries: c.Binaries,
		Processes: c.procs, Ready: c.ready, OwnDir: c.ownDir,
	}, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.Dir, stateFile))
}

// prepareGivenDir makes dir ready for a fresh cluster: it refuses a dir
// whose recorded cluster still runs, and removes the harness's own files
// from an earlier run (only those, by name).
func prepareGivenDir(dir string) error {
	if old, err := Attach(dir); err == nil {
		for _, p := range old.procs {
			if p.alive() {
				return fmt.Errorf("a cluster is already running in %s (%s, pid %d); stop it with: go run ./test/cluster down --dir %s", dir, p.Name, p.PID, dir)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, name := range []string{stateFile, adminKubeconfigFile, limitedKubeconfigFile, cmKubeconfigFile, schedKubeconfigFile, pkiSubdir, etcdSubdir, logsSubdir, kwokSubdir} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// ensureMountPoints creates /workspace (empty) when missing: kwok's
// namespace mounts a tmpfs on it, which needs an existing directory.
func ensureMountPoints(asRoot bool) error {
	for _, d := range []string{"/workspace", "/tmp", "/home", "/run"} {
		if _, err := os.Stat(d); err == nil {
			continue
		}
		if d != "/workspace" || !asRoot {
			return fmt.Errorf("%s does not exist; kwok's sandbox mounts a tmpfs over it (create it as root: mkdir %s)", d, d)
		}
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
	}
	return nil
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// componentEnv is the environment of the control-plane components: the
// caller's, without a KUBECONFIG that could point somewhere else.
func componentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBECONFIG=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1, for the
// control plane's components and for what tests run beside it (a real
// node's kubelet, a peer's controller). They are free when returned; a race
// with another process is possible but unlikely.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Component is one process Up started: its name (etcd, kube-apiserver,
// kwok, ...) and PID.
type Component struct {
	Name string
	PID  int
}

// Components returns the processes Up started, in start order: a caller
// that measures the control plane (the bench's CPU breakdown) reads them
// in /proc.
func (c *Cluster) Components() []Component {
	var out []Component
	for _, p := range c.procs {
		out = append(out, Component{Name: p.Name, PID: p.PID})
	}
	return out
}
