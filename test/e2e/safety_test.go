package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Racing creates (and deletes) of one name, from many processes, round
// after round: no Pod may ever become schedulable before its own
// NetworkPolicy exists, and every surviving Pod owns its policy and Secret.
// (Before scheduling gates, about one round in ten left a Running Pod with
// no policy at all.)
func TestRacingCreatesNeverLeaveAnUnfencedSandbox(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	events := recordPodEvents(t, ns)
	t.Setenv("E2E_RACE_KEY", "race-secret")
	const rounds, creators, deleters = 10, 5, 2
	successes := 0
	for round := 0; round < rounds; round++ {
		name := fmt.Sprintf("r%d", round%3) // names come back while the GC still holds old dependents
		var wg sync.WaitGroup
		var mu sync.Mutex
		racers := creators
		if round%2 == 1 {
			racers += deleters // every other round, deletes race the creates too
		}
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				args := []string{"create", name, "-n", ns, "--network", "none", "--secret-env", "E2E_RACE_KEY"}
				if i >= creators {
					args = []string{"delete", name, "-n", ns, "--ignore-not-found", "--wait=false"}
				}
				r := plugin(t, "", args...)
				if i < creators && r.code == 0 {
					mu.Lock()
					successes++
					mu.Unlock()
				}
				if r.code != 0 && !strings.Contains(r.stderr, "already exists") && !strings.Contains(r.stderr, "was deleted while it was starting") &&
					!strings.Contains(r.stderr, "lifting its scheduling gate") && !strings.Contains(r.stderr, "being deleted") &&
					// A create that meets the Secret of a sandbox deleted a
					// moment ago, whose Pod is still terminating: refused
					// (never adopted), so no sandbox runs without its own.
					!strings.Contains(r.stderr, "belongs to another sandbox that still exists") {
					t.Errorf("round %d: %v: unexpected failure:\n%s", round, args, r)
				}
			}(i)
		}
		wg.Wait()
		assertEveryLivePodFenced(t, ns)
	}
	if successes == 0 {
		t.Fatal("no create succeeded in any round")
	}
	t.Logf("%d of %d racing creates succeeded", successes, rounds*creators)
	// Every Pod that was ever schedulable had its own policy first.
	ungated := events.ungatedPods()
	if len(ungated) == 0 {
		t.Fatal("no pod was ever started")
	}
	for uid, name := range ungated {
		created, at := events.gateHistory(t, uid)
		if !created {
			t.Errorf("pod %s was created without its gate", name)
		}
		nps := events.policiesOwnedBy(uid)
		if len(nps) == 0 {
			t.Errorf("pod %s (%s) was started and no NetworkPolicy owned by it was ever created", name, uid)
			continue
		}
		if rv(t, nps[0].ResourceVersion) >= at {
			t.Errorf("pod %s was started at revision %d, before its NetworkPolicy (revision %s)", name, at, nps[0].ResourceVersion)
		}
	}
	mustPlugin(t, "", "delete", "--all", "-n", ns)
}

func assertEveryLivePodFenced(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	pods, err := env.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	perName := map[string]int{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		perName[p.Labels[sandbox.LabelSandbox]]++
		np, err := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("live pod %s (gated=%v) has no NetworkPolicy: %v", p.Name, gated(&p), err)
			continue
		}
		if len(np.OwnerReferences) != 1 || np.OwnerReferences[0].UID != p.UID {
			t.Errorf("pod %s's NetworkPolicy is owned by %+v, not by it (%s)", p.Name, np.OwnerReferences, p.UID)
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(p.Labels)) {
			t.Errorf("pod %s's NetworkPolicy does not select it", p.Name)
		}
		secret, err := env.cs.CoreV1().Secrets(ns).Get(ctx, p.Name+"-env", metav1.GetOptions{})
		if err != nil || len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].UID != p.UID {
			t.Errorf("pod %s's Secret is missing or not its own: %v", p.Name, err)
		}
	}
	for name, n := range perName {
		if n > 1 {
			t.Errorf("%d live pods for sandbox %s", n, name)
		}
	}
}

// exec ends at once on SIGTERM and SIGINT — also with -it on a stdin that is
// not a terminal — and reports it (143, 130), never 0.
func TestExecEndsOnSignals(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "demo")
	for sig, want := range map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGINT: 130} {
		cmd := exec.Command(env.binary, "--kubeconfig", env.kubeconfig, "exec", "-it", "demo", "-n", ns, "--", "sleep", "300")
		stdin, err := cmd.StdinPipe() // a pipe, not a terminal: kubectl drops the TTY
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // let the stream start
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("%v did not end exec (the remote command runs 300 s)", sig)
		}
		stdin.Close()
		exitErr, ok := err.(*exec.ExitError)
		if !ok || exitErr.ExitCode() != want {
			t.Fatalf("%v: %v (want exit %d)\n%s", sig, err, want, stderr.String())
		}
		if !strings.Contains(stderr.String(), "Unable to use a TTY") || !strings.Contains(stderr.String(), "error: interrupted by") {
			t.Fatalf("%v: stderr %q", sig, stderr.String())
		}
	}
}

// Errors of cp out are one clear line of ours: no klog E-lines, no tar noise.
func TestCpOutErrorsAreOneLine(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "demo")
	dir := workPath(ns, "d")
	mustPlugin(t, "", "exec", "demo", "-n", ns, "--", "sh", "-c", `mkdir -p "$1" && head -c 1048576 /dev/zero > "$1/big"`, "sh", dir)

	r := plugin(t, "", "cp", "demo:"+dir+"/missing", t.TempDir(), "-n", ns)
	wantError(t, r, "no such file in the sandbox: "+dir+"/missing")
	if r.stderr != "error: no such file in the sandbox: "+dir+"/missing\n" {
		t.Fatalf("stderr is more than our one line: %q", r.stderr)
	}
	out := t.TempDir()
	r = plugin(t, "", "cp", "demo:"+dir+"/big", out, "-n", ns, "--max-bytes", "64Ki")
	wantError(t, r, "copy stopped: the sandbox sent more than 65536 bytes (the limit of --max-bytes)")
	if strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("stderr is more than our one line: %q", r.stderr)
	}
	mustPlugin(t, "", "cp", "demo:"+dir+"/big", out, "-n", ns, "--max-bytes", "2Mi")
	if info, err := os.Stat(filepath.Join(out, "big")); err != nil || info.Size() != 1<<20 {
		t.Fatalf("copy within the limit: %v %v", info, err)
	}
	wantError(t, plugin(t, "", "cp", "demo:"+dir+"/big", out, "-n", ns, "--max-bytes", "lots"), "not a valid quantity")
}

// cp ./link demo:... copies the directory the link points at.
func TestCpFollowsASymlinkedSource(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "demo")
	local := t.TempDir()
	if err := os.MkdirAll(filepath.Join(local, "real", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(local, "real", "sub", "f.txt"), []byte("through the link"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(local, "link")); err != nil {
		t.Fatal(err)
	}
	dir := workPath(ns, "in")
	mustPlugin(t, "", "cp", filepath.Join(local, "link"), "demo:"+dir+"/", "-n", ns)
	r := mustPlugin(t, "", "exec", "demo", "-n", ns, "--", "cat", dir+"/link/sub/f.txt")
	if r.stdout != "through the link" {
		t.Fatalf("copied %q", r.stdout)
	}
}

// Pods of a ReplicaSet whose template carries the sandbox labels (a copied
// manifest, or a hostile neighbour) are never exec'd into, listed or deleted.
func TestControlledPodsWithOurLabelsAreNeverTouched(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	ctx := context.Background()
	spec := sandbox.NewSpec("web", ns)
	pod := spec.Pod()
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: spec.SelectorLabels()},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: pod.Labels}, Spec: pod.Spec},
		},
	}
	rs.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
	if _, err := env.cs.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var victim string
	eventually(t, time.Minute, "the ReplicaSet's pod", func() bool {
		pods, err := env.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 1 {
			victim = pods.Items[0].Name
		}
		return victim != ""
	})
	wantError(t, plugin(t, "", "exec", "web", "-n", ns, "--", "true"), `controlled by ReplicaSet "web"`)
	wantError(t, plugin(t, "", "delete", "web", "-n", ns), `controlled by ReplicaSet "web"`)
	if r := mustPlugin(t, "", "delete", "--all", "-n", ns); r.stdout != "" || !strings.Contains(r.stderr, "No sandboxes found") {
		t.Fatalf("delete --all: %s", r)
	}
	if r := mustPlugin(t, "", "list", "-n", ns, "-o", "name"); r.stdout != "" {
		t.Fatalf("list shows %q", r.stdout)
	}
	if _, err := env.cs.CoreV1().Pods(ns).Get(ctx, victim, metav1.GetOptions{}); err != nil {
		t.Fatalf("the ReplicaSet's pod was touched: %v", err)
	}
}

func TestDryRunServerIntoANewNamespace(t *testing.T) {
	requireCluster(t)
	ns := "e2e-dry-new-" + newNamespace(t)[4:]
	ns = ns[:min(len(ns), 60)]
	r := plugin(t, "", "create", "demo", "-n", ns, "--create-namespace", "--dry-run=server")
	wantError(t, r, `namespace "`+ns+`" does not exist yet`)
	if _, err := env.cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a dry run created namespace %s: %v", ns, err)
	}
}
