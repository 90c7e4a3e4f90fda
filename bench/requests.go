package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// requestLog is a TLS reverse proxy in front of the API server that records
// every request a command makes: -requests runs each command once through it
// and prints what the plugin asks the API server for, next to kubectl.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
	srv  *http.Server
	// Kubeconfig points at the proxy; the proxy adds the real credentials.
	Kubeconfig string
}

func startRequestLog(e *Env) (*requestLog, error) {
	target, err := url.Parse(e.Config.Host)
	if err != nil {
		return nil, err
	}
	transport, err := restclient.TransportFor(e.Config)
	if err != nil {
		return nil, err
	}
	l := &requestLog{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
			// The clients hold a placeholder; the proxy's transport
			// adds the real credentials.
			r.Out.Header.Del("Authorization")
		},
		Transport: transport,
	}
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l.record(r)
			proxy.ServeHTTP(w, r)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() { _ = l.srv.ServeTLS(ln, "", "") }()

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["proxy"] = &clientcmdapi.Cluster{Server: "https://" + ln.Addr().String(), InsecureSkipTLSVerify: true}
	cfg.AuthInfos["proxy"] = &clientcmdapi.AuthInfo{Token: "added-by-the-proxy"}
	cfg.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "proxy", Namespace: e.Namespace}
	cfg.CurrentContext = "proxy"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, err
	}
	l.Kubeconfig = filepath.Join(e.Tmp, "proxy.kubeconfig")
	return l, os.WriteFile(l.Kubeconfig, b, 0o600)
}

func (l *requestLog) record(r *http.Request) {
	what := r.Method + " " + r.URL.Path
	q := r.URL.Query()
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		what += " (watch)"
	}
	if r.Header.Get("Upgrade") != "" {
		what += " (upgrade: " + strings.ToLower(r.Header.Get("Upgrade")) + ")"
	}
	l.mu.Lock()
	l.reqs = append(l.reqs, what)
	l.mu.Unlock()
}

// take returns the requests since the last take.
func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reqs
	l.reqs = nil
	return out
}

func (l *requestLog) Close() { _ = l.srv.Close() }

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "agentkernel-bench-proxy"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// requestCommand is one command of -requests, on both sides.
type requestCommand struct {
	name          string
	ours, kubectl func(e *Env) [][]string // command lines, run in turn
}

func requestCommands() []requestCommand {
	one := func(argv ...[]string) [][]string { return argv }
	return []requestCommand{
		{"list",
			func(e *Env) [][]string { return one(e.ours("list")) },
			func(e *Env) [][]string {
				return one(e.kubectl("get", "pods", "-l", "agentkernel/managed-by=agentkernel"))
			}},
		{"create → exec-ready",
			func(e *Env) [][]string { return one(e.ours("create", "rq", "--network", "open")) },
			func(e *Env) [][]string {
				return one(e.kubectl("create", "-f", filepath.Join(e.Tmp, "rq-pod.yaml")), e.kubectl("wait", "--for=condition=Ready", "pod/rq"))
			}},
		{"exec -- true",
			func(e *Env) [][]string { return one(e.ours("exec", "rq", "--", "true")) },
			func(e *Env) [][]string { return one(e.kubectl("exec", "rq", "--", "true")) }},
		{"cp a file in",
			func(e *Env) [][]string {
				return one(e.ours("cp", filepath.Join(e.Tmp, "rq.txt"), "rq:/workspace/rq-ours.txt"))
			},
			func(e *Env) [][]string {
				return one(e.kubectl("cp", filepath.Join(e.Tmp, "rq.txt"), "rq:/workspace/rq-kubectl.txt"))
			}},
		{"cp a file out",
			func(e *Env) [][]string {
				return one(e.ours("cp", "rq:/workspace/rq-ours.txt", filepath.Join(e.Tmp, "rq-out-ours.txt")))
			},
			func(e *Env) [][]string {
				return one(e.kubectl("cp", "rq:/workspace/rq-kubectl.txt", filepath.Join(e.Tmp, "rq-out-kubectl.txt")))
			}},
		{"completion (TAB)",
			func(e *Env) [][]string { return one(e.ours("__complete", "exec", "")) },
			func(e *Env) [][]string { return one(e.kubectl("__complete", "exec", "")) }},
		{"delete → gone",
			func(e *Env) [][]string { return one(e.ours("delete", "rq")) },
			func(e *Env) [][]string { return one(e.kubectl("delete", "pod", "rq", "--wait")) }},
	}
}

// countRequests runs each request command once per side through the proxy
// and prints the requests each made.
func countRequests(ctx context.Context, e *Env, w io.Writer) error {
	if err := needCluster(ctx, e); err != nil {
		return err
	}
	l, err := startRequestLog(e)
	if err != nil {
		return err
	}
	defer l.Close()
	pod, err := e.kubectlPod("rq", nil, "", "")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.Tmp, "rq-pod.yaml"), pod, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.Tmp, "rq.txt"), []byte("hello\n"), 0o644); err != nil {
		return err
	}
	// Both sides talk to the proxy: only its kubeconfig, no credentials.
	saved := e.childEnv
	e.childEnv = append(withoutEnv(saved, "KUBECONFIG"), "KUBECONFIG="+l.Kubeconfig)
	defer func() { e.childEnv = saved }()
	fmt.Fprintln(w, "API requests per command (one run each, through a recording proxy):")
	for _, c := range requestCommands() {
		for _, side := range []struct {
			name string
			argv func(*Env) [][]string
		}{{"agentkernel", c.ours}, {"kubectl", c.kubectl}} {
			l.take()
			if _, err := e.runAll(ctx, nil, side.argv(e)...); err != nil {
				return fmt.Errorf("%s (%s): %w", c.name, side.name, err)
			}
			printRequests(w, c.name, side.name, l.take())
		}
	}
	if e.Thousand > 0 {
		return countThousandRequests(ctx, e, l, w, e.Thousand)
	}
	return nil
}

func printRequests(w io.Writer, command, side string, reqs []string) {
	fmt.Fprintf(w, "\n%s, %s: %d requests\n", command, side, len(reqs))
	for _, r := range summariseRequests(reqs) {
		fmt.Fprintf(w, "    %s\n", r)
	}
}

// summariseRequests folds repeats ("GET /api ×3") and keeps first-seen order.
func summariseRequests(reqs []string) []string {
	var order []string
	count := map[string]int{}
	for _, r := range reqs {
		if count[r] == 0 {
			order = append(order, r)
		}
		count[r]++
	}
	out := slices.Clone(order)
	for i, r := range out {
		if n := count[r]; n > 1 {
			out[i] = fmt.Sprintf("%s ×%d", r, n)
		}
	}
	return out
}
