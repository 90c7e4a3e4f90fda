package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func TestMissingSandbox(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	want := `sandbox "ghost" not found in namespace "` + ns + `"; list them with: kubectl agentkernel list -A`
	wantError(t, plugin(t, "", "exec", "ghost", "-n", ns, "--", "true"), want)
	wantError(t, plugin(t, "", "cp", "ghost:/workspace/x", t.TempDir(), "-n", ns), want)
	wantError(t, plugin(t, "", "delete", "ghost", "-n", ns), want)
}

func TestUnmanagedPodIsNeverTouched(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	spec := sandbox.NewSpec("mine", ns)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agentkernel-mine"}, Spec: spec.Pod().Spec}
	if _, err := env.cs.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"exec", "mine", "-n", ns, "--", "true"},
		{"delete", "mine", "-n", ns},
		{"create", "mine", "-n", ns},
		{"cp", "mine:/workspace/x", t.TempDir(), "-n", ns},
	} {
		wantError(t, plugin(t, "", args...), "is not sandbox \"")
	}
	if _, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), "agentkernel-mine", metav1.GetOptions{}); err != nil {
		t.Fatalf("the pod is gone: %v", err)
	}
}

func TestBadInputLeavesNothing(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	cases := map[string]struct {
		args []string
		want string
	}{
		"bad name":     {[]string{"create", "Bad_Name", "-n", ns}, "invalid sandbox name"},
		"long name":    {[]string{"create", strings.Repeat("x", 52), "-n", ns}, "at most 51"},
		"bad quantity": {[]string{"create", "q", "-n", ns, "--memory", "12XB"}, "not a valid quantity"},
		"bad profile":  {[]string{"create", "p", "-n", ns, "--profile", "strict"}, "unknown profile"},
		"exec no dash": {[]string{"exec", "p", "-n", ns, "ls"}, "put '--' between"},
		"no such ns":   {[]string{"create", "p", "-n", "e2e-no-such-namespace"}, "not found"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			wantError(t, plugin(t, "", tc.args...), tc.want)
		})
	}
	assertNothingLeft(t, ns)
}

func TestForbiddenNamespace(t *testing.T) {
	requireCluster(t)
	if env.limited == "" {
		t.Skip("needs the least-privilege user of the local test cluster")
	}
	ns := newNamespace(t)
	r := pluginAs(t, env.limited, "", "create", "demo", "-n", ns)
	wantError(t, r, "forbidden")
	if !strings.Contains(r.stderr, "kubectl auth can-i") {
		t.Fatalf("the error does not say what to do next:\n%s", r)
	}
	assertNothingLeft(t, ns)
	wantError(t, pluginAs(t, env.limited, "", "list", "-n", ns), "forbidden")
}

func TestUnreachableAPIServer(t *testing.T) {
	requireCluster(t)
	// A kubeconfig pointing at a port where no API server listens: what a
	// stopped API server looks like from the client.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg, err := clientcmd.LoadFromFile(env.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + addr
	}
	path := filepath.Join(t.TempDir(), "stopped.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"create", "demo"}, {"list"}, {"exec", "demo", "--", "true"}, {"delete", "demo"}} {
		r := pluginAs(t, path, "", args...)
		wantError(t, r, "cannot reach the Kubernetes API server at https://"+addr)
		if strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("%v: more than one line:\n%s", args, r.stderr)
		}
	}
	_ = os.Remove(path)
}
