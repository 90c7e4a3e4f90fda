package realnode

import (
	"archive/tar"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// These run everywhere (no qemu): the pieces Boot assembles.

func TestWriteTar(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.tar")
	files := map[string][]byte{
		"etc/kubernetes/pki/kubelet.key":                 []byte("key"),
		"etc/kubernetes/kubelet-config.yaml":             []byte("cfg"),
		"run/secrets/kubernetes.io/serviceaccount/token": []byte("tok"),
	}
	if err := writeTar(path, files); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the tar holds credentials: want mode 0600, got %v (%v)", fi.Mode(), err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	seenDirs := map[string]bool{}
	got := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeDir {
			seenDirs[strings.TrimSuffix(h.Name, "/")] = true
			continue
		}
		if !seenDirs[filepath.Dir(h.Name)] {
			t.Errorf("%s comes before its directory", h.Name)
		}
		body, _ := io.ReadAll(tr)
		if string(body) != string(files[h.Name]) {
			t.Errorf("%s: got %q", h.Name, body)
		}
		got[h.Name] = h.Mode
	}
	want := map[string]int64{
		"etc/kubernetes/pki/kubelet.key":                 0o600,
		"etc/kubernetes/kubelet-config.yaml":             0o644,
		"run/secrets/kubernetes.io/serviceaccount/token": 0o600,
	}
	for name, mode := range want {
		if got[name] != mode {
			t.Errorf("%s: mode %o, want %o", name, got[name], mode)
		}
	}
}

func TestKubeletConfig(t *testing.T) {
	var cfg map[string]any
	if err := yaml.UnmarshalStrict([]byte(kubeletConfig(43210)), &cfg); err != nil {
		t.Fatalf("kubelet config is not valid YAML: %v", err)
	}
	for key, want := range map[string]any{
		"kind":                     "KubeletConfiguration",
		"port":                     float64(43210),
		"cgroupDriver":             "cgroupfs",
		"containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
	} {
		if cfg[key] != want {
			t.Errorf("%s = %v, want %v", key, cfg[key], want)
		}
	}
	auth := cfg["authentication"].(map[string]any)
	if auth["anonymous"].(map[string]any)["enabled"] != false {
		t.Error("the kubelet must not serve anonymous requests")
	}
}

func TestIssueFromClusterCA(t *testing.T) {
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(caKey)
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := localcluster.LoadAuthority(dir)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.Issue(now, localcluster.CertRequest{CommonName: "realnode", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	// The apiserver dials the kubelet at 127.0.0.1 and checks it against the CA.
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("serving certificate does not verify for 127.0.0.1: %v", err)
	}
	// The guest's clock may lag: the certificate is valid a while before now.
	if !cert.NotBefore.Before(now.Add(-time.Minute)) {
		t.Errorf("NotBefore %s is not back-dated", cert.NotBefore)
	}
}
