package realnode

import (
	"archive/tar"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// guestFiles are the per-run files the guest unpacks at / from fw_cfg.
func (n *Node) guestFiles(ctx context.Context, ca *localcluster.Authority, apiPort string, opts Options) (map[string][]byte, error) {
	now := time.Now()
	clientCert, clientKey, err := ca.Issue(now, localcluster.CertRequest{
		CommonName:    "system:node:" + n.Name,
		Organizations: []string{"system:nodes"},
		Client:        true,
	})
	if err != nil {
		return nil, err
	}
	// The apiserver checks the kubelet's certificate against the cluster CA
	// and dials 127.0.0.1 (the node's InternalIP).
	servingCert, servingKey, err := ca.Issue(now, localcluster.CertRequest{
		CommonName: n.Name,
		DNSNames:   []string{n.Name, "localhost"},
		IPs:        []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(guestIP)},
		Server:     true,
	})
	if err != nil {
		return nil, err
	}
	kubeconfigBytes, err := guestKubeconfig(apiPort, "kubelet")
	if err != nil {
		return nil, err
	}
	netpol := "0"
	files := map[string][]byte{
		"etc/kubernetes/pki/ca.crt":              ca.CertPEM,
		"etc/kubernetes/pki/kubelet.crt":         clientCert,
		"etc/kubernetes/pki/kubelet.key":         clientKey,
		"etc/kubernetes/pki/kubelet-serving.crt": servingCert,
		"etc/kubernetes/pki/kubelet-serving.key": servingKey,
		"etc/kubernetes/kubelet.kubeconfig":      kubeconfigBytes,
		"etc/kubernetes/kubelet-config.yaml":     []byte(kubeletConfig(n.KubeletPort)),
	}
	if opts.NetworkPolicy {
		netpol = "1"
		token, err := n.networkPolicyAgentToken(ctx)
		if err != nil {
			return nil, err
		}
		// The agent uses in-cluster configuration: host and port from the
		// environment, token and CA from the usual files.
		files["run/secrets/kubernetes.io/serviceaccount/token"] = []byte(token)
		files["run/secrets/kubernetes.io/serviceaccount/ca.crt"] = ca.CertPEM
		files["run/secrets/kubernetes.io/serviceaccount/namespace"] = []byte("kube-system")
	}
	csi := "0"
	if opts.CSI {
		csi = "1"
		csiFiles, err := csiGuestFiles(ca, apiPort)
		if err != nil {
			return nil, err
		}
		maps.Copy(files, csiFiles)
	}
	files["etc/agentkernel/node.env"] = fmt.Appendf(nil,
		"NODE_NAME=%s\nGUEST_IP=%s\nGATEWAY_IP=%s\nAPI_HOST=%s\nAPI_PORT=%s\nNETWORK_POLICY=%s\nCSI=%s\nKUBELET_VERBOSITY=%d\n",
		n.Name, guestIP, gatewayIP, apiHostIP, apiPort, netpol, csi, opts.KubeletVerbosity)
	return files, nil
}

func kubeletConfig(port int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
tlsCertFile: /etc/kubernetes/pki/kubelet-serving.crt
tlsPrivateKeyFile: /etc/kubernetes/pki/kubelet-serving.key
rotateCertificates: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failSwapOn: false
# No DNS in the guest (nothing to resolve, and slirp is restricted).
resolvConf: ""
clusterDomain: cluster.local
serializeImagePulls: false
# The disk is small and throwaway: never evict or garbage-collect the
# imported images (they cannot be pulled again).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
`, port)
}

// networkPolicyAgentToken gives kube-network-policies the RBAC of its own
// install manifest and returns a token for it.
func (n *Node) networkPolicyAgentToken(ctx context.Context) (string, error) {
	const name, ns = "kube-network-policies", "kube-system"
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := n.client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	if _, err := n.client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
	}
	if _, err := n.client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	// The service-account controller may not have made the account's
	// dependencies yet; TokenRequest needs only the account itself.
	var tr *authenticationv1.TokenRequest
	var err error
	for i := 0; i < 20; i++ {
		tr, err = n.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](4 * 3600)},
		}, metav1.CreateOptions{})
		if err == nil {
			return tr.Status.Token, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return "", fmt.Errorf("token for %s/%s: %w", ns, name, err)
}

func writeTar(path string, files map[string][]byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	now := time.Now()
	for name := range files {
		for d := filepath.Dir(name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	// Parents first: tar extraction creates them with these modes.
	sortedDirs := make([]string, 0, len(dirs))
	for d := range dirs {
		sortedDirs = append(sortedDirs, d)
	}
	slices.Sort(sortedDirs)
	for _, d := range sortedDirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		mode := int64(0o644)
		if strings.HasSuffix(name, ".key") || strings.HasSuffix(name, "/token") || strings.HasSuffix(name, ".kubeconfig") {
			mode = 0o600
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(files[name])), ModTime: now}); err != nil {
			return err
		}
		if _, err := tw.Write(files[name]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// guestKubeconfig is a kubeconfig, in the guest, for the API server on the
// host, authenticated by the client certificate the guest holds as
// /etc/kubernetes/pki/USER.crt and .key (the kubelet's, the CSI sidecars').
func guestKubeconfig(apiPort, user string) ([]byte, error) {
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.Clusters["local"] = &clientcmdapi.Cluster{
		Server:               "https://" + net.JoinHostPort(apiHostIP, apiPort),
		CertificateAuthority: "/etc/kubernetes/pki/ca.crt",
	}
	kubeconfig.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificate: "/etc/kubernetes/pki/" + user + ".crt",
		ClientKey:         "/etc/kubernetes/pki/" + user + ".key",
	}
	kubeconfig.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user}
	kubeconfig.CurrentContext = "local"
	return clientcmd.Write(*kubeconfig)
}
