package localcluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is long enough for any test run and short enough that a
// leaked state dir does not hold a forever-valid admin credential.
const certValidity = 30 * 24 * time.Hour

// backdate covers clock skew between the host and a qemu guest that joins
// as a real node and validates these certificates with its own clock.
const backdate = time.Hour

// apiServerSANs are the names the apiserver is reached by: loopback, the
// in-cluster Service (10.0.0.1 is the first address of the service range),
// and 10.0.2.2, the address under which a qemu user-mode guest sees the host.
var (
	apiServerDNSNames = []string{
		"localhost",
		"kubernetes",
		"kubernetes.default",
		"kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local",
	}
	apiServerIPs = []net.IP{
		net.ParseIP("127.0.0.1"),
		net.ParseIP("10.0.0.1"),
		net.ParseIP("10.0.2.2"),
	}
)

// authority is a certificate authority that issues the cluster's leaf
// certificates.
type authority struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// certRequest describes one leaf certificate.
type certRequest struct {
	commonName    string
	organizations []string
	dnsNames      []string
	ips           []net.IP
	server        bool // serverAuth extended key usage
	client        bool // clientAuth extended key usage
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newAuthority makes a self-signed CA valid from now-backdate.
func newAuthority(now time.Time) (*authority, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "kubectl-agentkernel-e2e-ca"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &authority{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  keyPEM,
	}, nil
}

// issue signs a new key pair for req and returns PEM certificate and key.
func (ca *authority) issue(now time.Time, req certRequest) (certPEM, keyPEM []byte, err error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.commonName, Organization: req.organizations},
		DNSNames:     req.dnsNames,
		IPAddresses:  req.ips,
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if req.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if req.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %q: %w", req.commonName, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// issueFiles issues req and writes <dir>/<name>.crt and <dir>/<name>.key.
func (ca *authority) issueFiles(now time.Time, dir, name string, req certRequest) error {
	certPEM, keyPEM, err := ca.issue(now, req)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), certPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600)
}

// serviceAccountKeys returns a PEM private key and its PKIX public key for
// signing and verifying service-account tokens.
func serviceAccountKeys() (privPEM, pubPEM []byte, err error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	privPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, err
	}
	return privPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// PKI file names inside Cluster.PKIDir.
const (
	caName                  = "ca"
	apiServerName           = "apiserver"
	apiServerKubeletName    = "apiserver-kubelet-client"
	apiServerEtcdClientName = "apiserver-etcd-client"
	etcdServerName          = "etcd-server"
	adminName               = "admin"
	limitedName             = "e2e-limited"
	controllerManagerName   = "controller-manager"
	schedulerName           = "scheduler"
	kwokClientName          = "kwok-client"
	kwokServingName         = "kwok-serving"
	serviceAccountKeyFile   = "sa.key"
	serviceAccountPubFile   = "sa.pub"
)

// LimitedUser is the user (and only group) of Cluster.LimitedKubeconfig. It
// has no RBAC at all: a test binds the roles it needs to this name.
const LimitedUser = "e2e-limited"

// kwokControllerUser is the identity kwok talks to the apiserver with.
const kwokControllerUser = "kwok-controller"

// writePKI creates a fresh CA and every certificate the cluster uses in dir.
// nodeName gets a serving certificate for kwok's kubelet endpoint.
func writePKI(dir, nodeName string, now time.Time) (*authority, error) {
	ca, err := newAuthority(now)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, caName+".crt"), ca.certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, caName+".key"), ca.keyPEM, 0o600); err != nil {
		return nil, err
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	leaves := []struct {
		name string
		req  certRequest
	}{
		{apiServerName, certRequest{commonName: "kube-apiserver", dnsNames: apiServerDNSNames, ips: apiServerIPs, server: true}},
		{apiServerKubeletName, certRequest{commonName: "kube-apiserver-kubelet-client", organizations: []string{"system:masters"}, client: true}},
		{apiServerEtcdClientName, certRequest{commonName: "kube-apiserver-etcd-client", client: true}},
		{etcdServerName, certRequest{commonName: "etcd", dnsNames: []string{"localhost"}, ips: loopback, server: true, client: true}},
		{adminName, certRequest{commonName: "e2e-admin", organizations: []string{"system:masters"}, client: true}},
		{limitedName, certRequest{commonName: LimitedUser, organizations: []string{LimitedUser}, client: true}},
		{controllerManagerName, certRequest{commonName: "system:kube-controller-manager", client: true}},
		{schedulerName, certRequest{commonName: "system:kube-scheduler", client: true}},
		{kwokClientName, certRequest{commonName: kwokControllerUser, client: true}},
		{kwokServingName, certRequest{commonName: nodeName, dnsNames: []string{nodeName, "localhost"}, ips: loopback, server: true}},
	}
	for _, l := range leaves {
		if err := ca.issueFiles(now, dir, l.name, l.req); err != nil {
			return nil, err
		}
	}
	priv, pub, err := serviceAccountKeys()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, serviceAccountKeyFile), priv, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, serviceAccountPubFile), pub, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}
