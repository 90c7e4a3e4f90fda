package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Injected model keys on the real API server (issue #25). The proxy's use
// of the table is pkg/egress's; here is what the plugin writes: each
// sandbox's entry, written by many processes at once without one losing
// another's, the grant on each Pod, the key in no Pod and no other Secret,
// and the entries gone with their sandboxes.

const e2eKey = "sk-e2e-injected-key-0123456789"

func containsKey(b []byte, key string) bool {
	return bytes.Contains(b, []byte(key)) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte(key))))
}

// pluginProcess runs the binary once, for use from many goroutines.
func pluginProcess(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.binary, append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent", "E2E_MODEL_KEY="+e2eKey)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestInjectedKeysConcurrentCreates(t *testing.T) {
	requireCluster(t)
	requireSimulated(t)
	ns := newNamespace(t)
	ctx := context.Background()
	egressInstalled(t, ns)
	// No key table yet: the first creates race to make it.
	const procs, rounds = 20, 3
	var wg sync.WaitGroup
	errs := make(chan error, procs*rounds)
	for p := range procs {
		wg.Go(func() {
			for r := range rounds {
				name := fmt.Sprintf("k-%d-%d", p, r)
				out, err := pluginProcess("create", name, "-n", ns, "--inject", "E2E_MODEL_KEY=api.example.com:x-api-key", "--wait=false",
					// Sixty default sandboxes would hold 60 of the simulated
					// node's 64 CPUs while the namespace goes away.
					"--cpu", "10m", "--memory", "16Mi")
				if err != nil {
					errs <- fmt.Errorf("create %s: %v\n%s", name, err, out)
				}
				if containsKey([]byte(out), e2eKey) {
					errs <- fmt.Errorf("create %s printed the key", name)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	table, err := env.cs.CoreV1().Secrets(ns).Get(ctx, keys.SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(table.Data) != procs*rounds {
		t.Fatalf("%d entries in the key table, want %d", len(table.Data), procs*rounds)
	}
	for p := range procs {
		for r := range rounds {
			name := sandbox.PodName(fmt.Sprintf("k-%d-%d", p, r))
			pod, err := env.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			e, err := keys.Decode(table.Data[name])
			if err != nil {
				t.Fatalf("entry %s: %v", name, err)
			}
			c, ok := e.For("api.example.com")
			if !ok || c.Key != e2eKey || c.Header != "X-Api-Key" || e.Grant == "" || pod.Annotations[keys.GrantAnnotation] != e.Grant {
				t.Errorf("entry %s does not match its Pod's grant %q", name, pod.Annotations[keys.GrantAnnotation])
			}
		}
	}
	if err := keyNowhereElse(ctx, ns, e2eKey); err != nil {
		t.Fatal(err)
	}
	// What kubectl shows of a Pod holds no key either.
	out, err := exec.Command("kubectl", "--kubeconfig", env.kubeconfig, "get", "pods", "-n", ns, "-o", "yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, out)
	}
	if containsKey(out, e2eKey) {
		t.Fatal("kubectl get pod -o yaml shows the key")
	}

	// Deleting removes the sandbox's entry; gc prunes one whose Pod went
	// another way.
	mustPlugin(t, "", "delete", "k-0-0", "-n", ns)
	if err := env.cs.CoreV1().Pods(ns).Delete(ctx, sandbox.PodName("k-0-1"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "pod k-0-1 gone", func() bool {
		_, err := env.cs.CoreV1().Pods(ns).Get(ctx, sandbox.PodName("k-0-1"), metav1.GetOptions{})
		return err != nil
	})
	r := mustPlugin(t, "", "gc", "-n", ns)
	if !strings.Contains(r.stdout+r.stderr, sandbox.PodName("k-0-1")) {
		t.Errorf("gc did not name the stale entry:\n%s", r)
	}
	table, _ = env.cs.CoreV1().Secrets(ns).Get(ctx, keys.SecretName, metav1.GetOptions{})
	if _, ok := table.Data[sandbox.PodName("k-0-0")]; ok {
		t.Error("delete left its entry")
	}
	if _, ok := table.Data[sandbox.PodName("k-0-1")]; ok {
		t.Error("gc left the entry of a Pod that is gone")
	}
	if len(table.Data) != procs*rounds-2 {
		t.Errorf("%d entries left, want %d", len(table.Data), procs*rounds-2)
	}
	// Gone before the next test needs the node, and their entries with them.
	mustPlugin(t, "", "delete", "--all", "-n", ns)
	table, _ = env.cs.CoreV1().Secrets(ns).Get(ctx, keys.SecretName, metav1.GetOptions{})
	if len(table.Data) != 0 {
		t.Errorf("delete --all left %d entries in the key table", len(table.Data))
	}
}
