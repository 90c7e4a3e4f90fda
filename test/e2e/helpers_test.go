package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func requireCluster(t *testing.T) {
	t.Helper()
	if env.skipReason != "" {
		t.Skip(env.skipReason)
	}
}

// requireSimulated skips tests that rely on kwok running commands on this
// host (e.g. a sandbox "image" without tar made from a PATH).
func requireSimulated(t *testing.T) {
	t.Helper()
	requireCluster(t)
	if !env.simulated {
		t.Skip("needs the simulated (kwok) node of the local test cluster")
	}
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// plugin runs the real binary with the test cluster's kubeconfig.
func plugin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return pluginAs(t, env.kubeconfig, stdin, args...)
}

func pluginAs(t *testing.T, kubeconfig, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.binary, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent") // only the flag may count
	var out, errOut bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", args, err)
	}
	return result{out.String(), errOut.String(), code}
}

// mustPlugin runs the plugin and fails the test unless it exits 0.
func mustPlugin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := plugin(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("kubectl agentkernel %s:\n%s", strings.Join(args, " "), r)
	}
	return r
}

// wantError asserts a clear one-line error and a non-zero exit code.
func wantError(t *testing.T, r result, want string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("expected failure, got:\n%s", r)
	}
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not say %q:\n%s", want, r)
	}
	if !strings.HasPrefix(r.stderr, "error: ") {
		t.Fatalf("stderr is not a kubectl-style error line:\n%s", r)
	}
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9-]+`)

// newNamespace makes a namespace enforcing Pod Security "restricted" and
// deletes it when the test ends.
func newNamespace(t *testing.T) string {
	t.Helper()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	base := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "-")
	if len(base) > 40 {
		base = base[:40]
	}
	name := strings.Trim("e2e-"+base, "-") + "-" + hex.EncodeToString(suffix)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"e2e.agentkernel/test":               "true",
	}}}
	if _, err := env.cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, name) })
	waitForServiceAccount(t, name)
	return name
}

func deleteNamespace(t *testing.T, name string) {
	err := env.cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting namespace %s: %v", name, err)
	}
}

// Pods are rejected until the controller-manager makes the namespace's
// default ServiceAccount.
func waitForServiceAccount(t *testing.T, ns string) {
	t.Helper()
	eventually(t, time.Minute, "the default ServiceAccount in "+ns, func() bool {
		_, err := env.cs.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil
	})
}

func waitNamespacesGone(ctx context.Context) {
	_ = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := env.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "e2e.agentkernel/test=true"})
		return err == nil && len(list.Items) == 0, nil
	})
}

// createSandbox creates a sandbox with the plugin and waits until it runs.
func createSandbox(t *testing.T, ns, name string, extra ...string) {
	t.Helper()
	r := mustPlugin(t, "", append([]string{"create", name, "-n", ns}, extra...)...)
	if strings.TrimSpace(r.stdout) != "sandbox/"+name+" created" {
		t.Fatalf("create printed %q", r.stdout)
	}
}

// workPath is a path under /workspace private to one test: on the simulated
// node every sandbox shares kwok's /workspace.
func workPath(ns, p string) string {
	return "/workspace/" + ns + "/" + strings.TrimPrefix(p, "/")
}

// objectsLeft lists everything of ours in a namespace.
func objectsLeft(t *testing.T, ns string) []string {
	t.Helper()
	ctx := context.Background()
	var left []string
	pods, err := env.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		left = append(left, "pod/"+p.Name)
	}
	nps, err := env.cs.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range nps.Items {
		left = append(left, "networkpolicy/"+p.Name)
	}
	claims, err := env.cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: sandbox.ManagedSelector})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range claims.Items {
		left = append(left, "persistentvolumeclaim/"+c.Name)
	}
	secrets, err := env.cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: sandbox.ManagedSelector})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		left = append(left, "secret/"+s.Name)
	}
	return left
}

func assertNothingLeft(t *testing.T, ns string) {
	t.Helper()
	if left := objectsLeft(t, ns); len(left) > 0 {
		t.Fatalf("left behind in %s: %v", ns, left)
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s", what, timeout)
	}
}
