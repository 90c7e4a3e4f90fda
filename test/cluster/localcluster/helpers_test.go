package localcluster

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func TestCacheKey(t *testing.T) {
	base := map[string][]byte{"components/go.mod": []byte("module x\n"), "kwok/kwok.patch": []byte("diff\n")}
	k := cacheKey("go1.26.8", base)
	if len(k) != 20 {
		t.Fatalf("key %q: want 20 hex characters", k)
	}
	if again := cacheKey("go1.26.8", map[string][]byte{"kwok/kwok.patch": []byte("diff\n"), "components/go.mod": []byte("module x\n")}); again != k {
		t.Errorf("key depends on map order: %s != %s", again, k)
	}
	changed := map[string][]byte{"components/go.mod": []byte("module x\n"), "kwok/kwok.patch": []byte("diff2\n")}
	for name, other := range map[string]string{
		"go version": cacheKey("go1.26.9", base),
		"patch":      cacheKey("go1.26.8", changed),
		"file set":   cacheKey("go1.26.8", map[string][]byte{"components/go.mod": []byte("module x\n")}),
	} {
		if other == k {
			t.Errorf("changing the %s did not change the key", name)
		}
	}
}

func TestKubeLDFlags(t *testing.T) {
	f := kubeLDFlags()
	for _, want := range []string{
		"-X k8s.io/component-base/version.gitVersion=v1.37.2",
		"-X k8s.io/component-base/version.gitMajor=1",
		"-X k8s.io/component-base/version.gitMinor=37",
		"-X k8s.io/component-base/version.gitTreeState=clean",
		"-X k8s.io/client-go/pkg/version.gitVersion=v1.37.2",
		"-X k8s.io/client-go/pkg/version.gitTreeState=clean",
	} {
		if !strings.Contains(f, want) {
			t.Errorf("ldflags %q lack %q", f, want)
		}
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWritePKI(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if _, err := writePKI(dir, "kwok-node", now); err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	if !ca.IsCA {
		t.Fatal("ca.crt is not a CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	api := readCert(t, filepath.Join(dir, "apiserver.crt"))
	for _, name := range []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} {
		if _, err := api.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("apiserver cert for %s: %v", name, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "10.0.0.1", "10.0.2.2"} {
		if !slices.ContainsFunc(api.IPAddresses, func(a net.IP) bool { return a.Equal(net.ParseIP(ip)) }) {
			t.Errorf("apiserver cert lacks IP SAN %s", ip)
		}
	}
	if d := now.Sub(api.NotBefore); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("NotBefore is %s before now, want 1h", d)
	}

	for name, want := range map[string]struct {
		cn  string
		org []string
	}{
		"admin":       {"e2e-admin", []string{"system:masters"}},
		"e2e-limited": {"e2e-limited", []string{"e2e-limited"}},
		"scheduler":   {"system:kube-scheduler", nil},
	} {
		c := readCert(t, filepath.Join(dir, name+".crt"))
		if c.Subject.CommonName != want.cn || !slices.Equal(c.Subject.Organization, want.org) {
			t.Errorf("%s: subject %v, want CN=%s O=%v", name, c.Subject, want.cn, want.org)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s is not a client cert of the CA: %v", name, err)
		}
	}
	kwok := readCert(t, filepath.Join(dir, "kwok-serving.crt"))
	if _, err := kwok.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("kwok serving cert for 127.0.0.1: %v", err)
	}
	for _, f := range []string{"ca.key", "admin.key", "sa.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "sa.pub"))
	if err != nil || !strings.Contains(string(pub), "BEGIN PUBLIC KEY") {
		t.Errorf("sa.pub: %v %q", err, pub)
	}
}

func TestKwokConfig(t *testing.T) {
	cfg := kwokConfig(kwokConfigInput{NodeName: "n", Port: 12345, Stages: "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: s\n"})
	var kinds []string
	var execNames []string
	for _, doc := range strings.Split(cfg, "\n---\n") {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Options map[string]any `json:"options"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, doc)
		}
		kinds = append(kinds, obj.Kind)
		if obj.Kind == "ClusterExec" {
			execNames = append(execNames, obj.Metadata.Name)
		}
		if obj.Kind == "KwokConfiguration" {
			for _, k := range []string{"podPlayStageParallelism", "nodePlayStageParallelism"} {
				if v, _ := obj.Options[k].(float64); v <= 0 {
					t.Errorf("%s = %v, kwok needs > 0", k, obj.Options[k])
				}
			}
			if obj.Options["nodePort"] != float64(12345) || obj.Options["serverAddress"] != "127.0.0.1:12345" {
				t.Errorf("port options: %v %v", obj.Options["nodePort"], obj.Options["serverAddress"])
			}
		}
	}
	for _, want := range []string{"KwokConfiguration", "Stage", "ClusterExec", "ClusterLogs", "ClusterAttach", "ClusterPortForward"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("config lacks a %s: %v", want, kinds)
		}
	}
	if len(execNames) != 2 || !strings.Contains(cfg, "- "+NoTarPodName) {
		t.Fatalf("exec rules %v", execNames)
	}
	if strings.Index(cfg, NoTarPodName) > strings.Index(cfg, "z-all-pods") {
		t.Error("the e2e-notar rule must precede the catch-all rule")
	}
}

func TestKwokCommand(t *testing.T) {
	root := strings.Join(kwokCommand(true, true), " ")
	if !strings.HasPrefix(root, "setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs -- unshare --user --map-root-user --mount") {
		t.Errorf("as root: %s", root)
	}
	user := kwokCommand(false, false)
	if slices.ContainsFunc(user, func(a string) bool { return strings.HasPrefix(a, "--reuid") }) {
		t.Errorf("not root, yet switching user: %v", user)
	}
	if !strings.Contains(strings.Join(user, " "), "kwok-sandbox setpriv --pdeathsig=KILL -- /run/kwok/kwok --config=") {
		t.Errorf("attached kwok must die with its parent: %v", user)
	}
	if strings.Contains(root, "pdeathsig") {
		t.Errorf("detached kwok must outlive its parent: %v", root)
	}
	if !strings.Contains(kwokSandboxScript, "unshare --user --map-user=65534 --map-group=65534") {
		t.Error("kwok must give up the namespace's root before it runs")
	}
	for _, m := range SandboxMountPoints {
		if !strings.Contains(kwokSandboxScript, "tmpfs "+m) {
			t.Errorf("no tmpfs over %s", m)
		}
	}
}

func TestParseStat(t *testing.T) {
	st, err := parseStat([]byte("4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"))
	if err != nil {
		t.Fatal(err)
	}
	if st.state != 'S' || st.pgrp != 4242 || st.startTicks != 987654 {
		t.Errorf("got %+v", st)
	}
	self, err := readStat(os.Getpid())
	if err != nil || self.startTicks == 0 {
		t.Errorf("own stat: %+v %v", self, err)
	}
}

func TestIsPackageLine(t *testing.T) {
	for line, want := range map[string]bool{
		"k8s.io/kubernetes/pkg/api":       true,
		"go: downloading x v1":            false,
		"# k8s.io/x":                      false,
		"./foo.go:1:2: undefined: x":      false,
		"":                                false,
		"github.com/google/cel-go/parser": true,
	} {
		if got := isPackageLine(line); got != want {
			t.Errorf("isPackageLine(%q) = %v", line, got)
		}
	}
}

func TestWriteNoTarBin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	if err := writeNoTarBin(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := lookPathIn("tar", dir); err == nil {
		t.Error("tar found in the no-tar PATH")
	}
	for _, tool := range noTarTools {
		if _, err := lookPathIn(tool, dir); err != nil {
			t.Errorf("%s: %v", tool, err)
		}
	}
}

func TestHoldPodsOnlyTouchesPodReady(t *testing.T) {
	in := "metadata:\n  name: node-initialize\nspec:\n  selector:\n    matchExpressions:\n    - key: a\n---\nmetadata:\n  name: pod-ready\nspec:\n  selector:\n    matchExpressions:\n    - key: b\n"
	out := holdPods(in)
	if strings.Count(out, HoldLabel) != 1 || strings.Index(out, HoldLabel) < strings.Index(out, "pod-ready") {
		t.Fatalf("hold selector misplaced:\n%s", out)
	}
}
