package localcluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
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

// Authority is the cluster's certificate authority. Up makes one; a real
// node loads it from PKIDir (LoadAuthority) to issue its kubelet's
// certificates.
type Authority struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
	keyPEM  []byte
}

// CertRequest describes one leaf certificate.
type CertRequest struct {
	CommonName    string
	Organizations []string
	DNSNames      []string
	IPs           []net.IP
	Server        bool // serverAuth extended key usage
	Client        bool // clientAuth extended key usage
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
func newAuthority(now time.Time) (*Authority, error) {
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
	return &Authority{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
		keyPEM:  keyPEM,
	}, nil
}

// Issue signs a new key pair for req and returns PEM certificate and key,
// valid from now-backdate (a qemu guest's clock may lag the host's).
func (ca *Authority) Issue(now time.Time, req CertRequest) (certPEM, keyPEM []byte, err error) {
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
		Subject:      pkix.Name{CommonName: req.CommonName, Organization: req.Organizations},
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if req.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %q: %w", req.CommonName, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// issueFiles issues req and writes <dir>/<name>.crt and <dir>/<name>.key.
func (ca *Authority) issueFiles(now time.Time, dir, name string, req CertRequest) error {
	certPEM, keyPEM, err := ca.Issue(now, req)
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
func writePKI(dir, nodeName string, now time.Time) (*Authority, error) {
	ca, err := newAuthority(now)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, caName+".crt"), ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, caName+".key"), ca.keyPEM, 0o600); err != nil {
		return nil, err
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	leaves := []struct {
		name string
		req  CertRequest
	}{
		{apiServerName, CertRequest{CommonName: "kube-apiserver", DNSNames: apiServerDNSNames, IPs: apiServerIPs, Server: true}},
		{apiServerKubeletName, CertRequest{CommonName: "kube-apiserver-kubelet-client", Organizations: []string{"system:masters"}, Client: true}},
		{apiServerEtcdClientName, CertRequest{CommonName: "kube-apiserver-etcd-client", Client: true}},
		{etcdServerName, CertRequest{CommonName: "etcd", DNSNames: []string{"localhost"}, IPs: loopback, Server: true, Client: true}},
		{adminName, CertRequest{CommonName: "e2e-admin", Organizations: []string{"system:masters"}, Client: true}},
		{limitedName, CertRequest{CommonName: LimitedUser, Organizations: []string{LimitedUser}, Client: true}},
		{controllerManagerName, CertRequest{CommonName: "system:kube-controller-manager", Client: true}},
		{schedulerName, CertRequest{CommonName: "system:kube-scheduler", Client: true}},
		{kwokClientName, CertRequest{CommonName: kwokControllerUser, Client: true}},
		{kwokServingName, CertRequest{CommonName: nodeName, DNSNames: []string{nodeName, "localhost"}, IPs: loopback, Server: true}},
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

// LoadAuthority reads the CA (ca.crt, ca.key) from a cluster's PKIDir.
func LoadAuthority(dir string) (*Authority, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, caName+".crt"))
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM certificate", filepath.Join(dir, caName+".crt"))
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse the cluster CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caName+".key"))
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, caName+".key"), err)
	}
	return &Authority{Cert: cert, CertPEM: certPEM, key: key, keyPEM: keyPEM}, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("unsupported private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	return s, nil
}
