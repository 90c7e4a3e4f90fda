package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Persistent sandboxes on the real control plane: the PV controller binds
// workspaces to PersistentVolumes the tests make, the garbage collector
// and the scheduler are real; the simulated node mounts nothing, so what
// is proven here is the objects' lifecycle (the real node proves the
// files).

// storageFor makes n PersistentVolumes of a StorageClass name private to
// the test, for workspaces to bind to, and deletes them when it ends.
func storageFor(t *testing.T, n int) string {
	t.Helper()
	class := strings.ToLower("e2e-" + sandbox.RandomHex(4))
	ctx := context.Background()
	for i := 0; i < n; i++ {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", class, i), Labels: map[string]string{"e2e.agentkernel/test": "true"}},
			Spec: corev1.PersistentVolumeSpec{
				StorageClassName:              class,
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/nonexistent/e2e/" + class}},
			},
		}
		if _, err := env.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = env.cs.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
		})
	}
	return class
}

func getWorkspace(t *testing.T, ns, name string) (*corev1.PersistentVolumeClaim, bool) {
	t.Helper()
	pvc, err := env.cs.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), sandbox.WorkspaceName(name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return pvc, true
}

func getSandboxPod(t *testing.T, ns, name string) (*corev1.Pod, bool) {
	t.Helper()
	pod, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), sandbox.PodName(name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return pod, true
}

func ownedBy(refs []metav1.OwnerReference, kind string, uid types.UID) bool {
	for _, r := range refs {
		if r.Kind == kind && r.UID == uid {
			return true
		}
	}
	return false
}

// The whole life of a persistent sandbox, as a user lives it.
func TestPersistentSandboxSuspendAndResume(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	class := storageFor(t, 1)
	ctx := context.Background()
	// The simulated node reads no Secret into the environment: that the
	// resumed sandbox still has it is the real node's to prove; here, the
	// Secret object lives on, owned by the workspace.
	t.Setenv("E2E_PERSIST_TOKEN", "kept-secret")
	createSandbox(t, ns, "keep", "--persist=1Gi", "--storage-class", class, "--secret-env", "E2E_PERSIST_TOKEN")

	pvc, ok := getWorkspace(t, ns, "keep")
	if !ok {
		t.Fatal("create --persist made no workspace")
	}
	eventually(t, time.Minute, "the workspace to bind", func() bool {
		pvc, _ = getWorkspace(t, ns, "keep")
		return pvc.Status.Phase == corev1.ClaimBound
	})
	pod, _ := getSandboxPod(t, ns, "keep")
	if !ownedBy(pod.OwnerReferences, "PersistentVolumeClaim", pvc.UID) {
		t.Fatalf("the pod is not owned by its workspace: %+v", pod.OwnerReferences)
	}
	secret, err := env.cs.CoreV1().Secrets(ns).Get(ctx, sandbox.SecretName("keep"), metav1.GetOptions{})
	if err != nil || !ownedBy(secret.OwnerReferences, "PersistentVolumeClaim", pvc.UID) {
		t.Fatalf("the secret is not owned by the workspace: %v %+v", err, secret)
	}

	r := mustPlugin(t, "", "suspend", "keep", "-n", ns)
	if strings.TrimSpace(r.stdout) != "sandbox/keep suspended" {
		t.Fatalf("suspend printed %q", r.stdout)
	}
	if _, ok := getSandboxPod(t, ns, "keep"); ok {
		t.Fatal("the pod is still there after suspend returned")
	}
	eventually(t, time.Minute, "the old incarnation's NetworkPolicy to go", func() bool {
		_, err := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, sandbox.PodName("keep"), metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if _, err := env.cs.CoreV1().Secrets(ns).Get(ctx, sandbox.SecretName("keep"), metav1.GetOptions{}); err != nil {
		t.Fatalf("the secret did not survive the suspend: %v", err)
	}
	if pvc, _ := getWorkspace(t, ns, "keep"); pvc.Annotations[sandbox.AnnotationSuspendedAt] == "" {
		t.Fatalf("the workspace does not say it is suspended: %v", pvc.Annotations)
	}
	r = mustPlugin(t, "", "suspend", "keep", "-n", ns)
	if !strings.Contains(r.stdout, "sandbox/keep was suspended") {
		t.Fatalf("a second suspend printed %q", r.stdout)
	}
	list := mustPlugin(t, "", "list", "-n", ns)
	if !strings.Contains(list.stdout, "keep") || !strings.Contains(list.stdout, "Suspended") {
		t.Fatalf("list does not show the suspended sandbox:\n%s", list.stdout)
	}
	wantError(t, plugin(t, "", "exec", "keep", "-n", ns, "--no-resume", "--", "true"), `sandbox "keep" in namespace "`+ns+`" is suspended`)
	if _, ok := getSandboxPod(t, ns, "keep"); ok {
		t.Fatal("exec --no-resume resumed the sandbox")
	}

	// Any command on it resumes it: a new Pod, the same secret.
	r = mustPlugin(t, "", "exec", "keep", "-n", ns, "--", "echo", "back")
	if strings.TrimSpace(r.stdout) != "back" || !strings.Contains(r.stderr, "resuming sandbox/keep, suspended") {
		t.Fatalf("exec on a suspended sandbox:\n%s", r)
	}
	resumed, ok := getSandboxPod(t, ns, "keep")
	if !ok || resumed.UID == pod.UID || !ownedBy(resumed.OwnerReferences, "PersistentVolumeClaim", pvc.UID) {
		t.Fatalf("the resumed pod: %+v", resumed)
	}
	np, err := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, sandbox.PodName("keep"), metav1.GetOptions{})
	if err != nil || !ownedBy(np.OwnerReferences, "Pod", resumed.UID) {
		t.Fatalf("the resumed sandbox's fence: %v %+v", err, np)
	}
	if pvc, _ := getWorkspace(t, ns, "keep"); pvc.Annotations[sandbox.AnnotationSuspendedAt] != "" {
		t.Fatalf("the workspace still says suspended: %v", pvc.Annotations)
	}
	r = mustPlugin(t, "", "resume", "keep", "-n", ns)
	if strings.TrimSpace(r.stdout) != "sandbox/keep is running" {
		t.Fatalf("resume of a running sandbox printed %q", r.stdout)
	}

	mustPlugin(t, "", "delete", "keep", "-n", ns)
	eventually(t, time.Minute, "the workspace and secret to go", func() bool {
		_, ok := getWorkspace(t, ns, "keep")
		_, err := env.cs.CoreV1().Secrets(ns).Get(ctx, sandbox.SecretName("keep"), metav1.GetOptions{})
		return !ok && apierrors.IsNotFound(err)
	})
	eventually(t, time.Minute, "nothing left", func() bool { return len(objectsLeft(t, ns)) == 0 })
}

// The errors a user can hit, each one line, a non-zero exit, and nothing
// made.
func TestPersistentErrors(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "plain")
	wantError(t, plugin(t, "", "suspend", "plain", "-n", ns), `sandbox "plain" in namespace "`+ns+`" has no persistent workspace`)
	wantError(t, plugin(t, "", "resume", "plain", "-n", ns), "has no persistent workspace")
	wantError(t, plugin(t, "", "suspend", "nothing", "-n", ns), `sandbox "nothing" not found`)
	wantError(t, plugin(t, "", "resume", "nothing", "-n", ns), `sandbox "nothing" not found`)
	wantError(t, plugin(t, "", "create", "x", "-n", ns, "--storage-class", "fast"), "--storage-class needs --persist")
	wantError(t, plugin(t, "", "create", "x", "-n", ns, "--persist=0"), "--persist")
	wantError(t, plugin(t, "", "create", "x", "-n", ns, "--persist", "--retain", "10s"), "--retain must be at least 1m")
	// A workspace that never binds (no volume of its class): the create
	// says so within its timeout and leaves nothing.
	// (Progress lines come first: the scheduler's reason is news.)
	r := plugin(t, "", "create", "unbound", "-n", ns, "--persist", "--storage-class", "no-such-class", "--timeout", "20s")
	wantLastError(t, r, "its workspace did not bind")
	wantLastError(t, r, "--storage-class")
	eventually(t, time.Minute, "the failed create to leave nothing", func() bool {
		_, ok := getWorkspace(t, ns, "unbound")
		_, podLeft := getSandboxPod(t, ns, "unbound")
		return !ok && !podLeft
	})
	// --from a file that is no workspace archive, or a sandbox that is not
	// there: the new sandbox is not left half made.
	garbage := t.TempDir() + "/garbage.tar.gz"
	if err := os.WriteFile(garbage, []byte("not an archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	class := storageFor(t, 2)
	wantLastError(t, plugin(t, "", "create", "from-garbage", "-n", ns, "--from", garbage, "--persist=1Gi", "--storage-class", class), "not a usable workspace archive")
	wantLastError(t, plugin(t, "", "create", "from-nothing", "-n", ns, "--from", "nothing", "--persist=1Gi", "--storage-class", class), `--from nothing: no sandbox or volume snapshot of that name in namespace "`+ns+`"`)
	// A volume snapshot needs a workspace; a disposable sandbox's work goes to a file.
	wantError(t, plugin(t, "", "snapshot", "plain", "-n", ns), "has no persistent workspace: its files live and die with its Pod, so it cannot be suspended or resumed; a volume snapshot needs a workspace (create --persist): save the work to a file instead: kubectl agentkernel snapshot plain --to plain.tar.gz")
	for _, name := range []string{"from-garbage", "from-nothing"} {
		eventually(t, time.Minute, name+" to leave nothing", func() bool {
			_, ws := getWorkspace(t, ns, name)
			_, pod := getSandboxPod(t, ns, name)
			return !ws && !pod
		})
	}
	mustPlugin(t, "", "delete", "plain", "-n", ns)
}

// Racing suspends, resumes and commands from many processes, over rounds,
// leave one sandbox: never a Pod that ran without its NetworkPolicy, at
// most one Pod at any time, and in the end either a running sandbox or a
// suspended one, whole.
func TestPersistentRacesFromManyProcesses(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	class := storageFor(t, 1)
	events := recordPodEvents(t, ns)
	createSandbox(t, ns, "race", "--persist=1Gi", "--storage-class", class)
	verbs := [][]string{{"suspend"}, {"resume"}, {"exec", "--", "true"}, {"suspend"}, {"resume"}, {"exec", "--", "true"}}
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		results := make([]result, len(verbs))
		for i, v := range verbs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
				args := append([]string{v[0], "race", "-n", ns}, v[1:]...)
				results[i] = plugin(t, "", args...)
			}()
		}
		wg.Wait()
		for i, r := range results {
			// A suspend may find the Pod another one made still starting,
			// and a command may find its resumed Pod suspended under it:
			// both fail cleanly; nothing else may.
			if r.code != 0 && !strings.Contains(r.stderr, "error: ") {
				t.Fatalf("round %d, %v: no error line:\n%s", round, verbs[i], r)
			}
		}
		// Settle, then check the sandbox is whole.
		mustPlugin(t, "", "resume", "race", "-n", ns)
		pod, ok := getSandboxPod(t, ns, "race")
		if !ok || pod.Status.Phase != corev1.PodRunning {
			t.Fatalf("round %d: after resume, pod %v", round, pod)
		}
		pods, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("round %d: %d pods: %v", round, len(pods.Items), err)
		}
	}
	// Every Pod that was ever ungated had its policy first.
	for uid, name := range events.ungatedPods() {
		createdGated, ungatedAt := events.gateHistory(t, uid)
		if !createdGated {
			t.Fatalf("pod %s (%s) was created without its gate", name, uid)
		}
		policies := events.policiesOwnedBy(uid)
		if len(policies) == 0 || rv(t, policies[0].ResourceVersion) >= ungatedAt {
			t.Fatalf("pod %s (%s) was ungated at %d before its NetworkPolicy existed (%v)", name, uid, ungatedAt, policies)
		}
	}
	mustPlugin(t, "", "delete", "race", "-n", ns)
}

// A delete racing resumes: once it has succeeded, the sandbox goes
// entirely, whatever the resumes did (a Pod made after the delete is owned
// by the deleted workspace, and the garbage collector takes it).
func TestPersistentDeleteRacingResumes(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	class := storageFor(t, 1)
	createSandbox(t, ns, "doomed", "--persist=1Gi", "--storage-class", class)
	mustPlugin(t, "", "suspend", "doomed", "-n", ns)
	var wg sync.WaitGroup
	deleted := make(chan result, 1)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
			plugin(t, "", "resume", "doomed", "-n", ns, "--timeout", "30s")
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(200 * time.Millisecond)
		deleted <- plugin(t, "", "delete", "doomed", "-n", ns)
	}()
	wg.Wait()
	if r := <-deleted; r.code != 0 {
		t.Fatalf("delete:\n%s", r)
	}
	eventually(t, 2*time.Minute, "the sandbox to be gone entirely", func() bool {
		_, ws := getWorkspace(t, ns, "doomed")
		return !ws && len(objectsLeft(t, ns)) == 0
	})
}

// Ctrl-C in every phase of a persistent create and of a resume: what is
// left is whole or nothing — a running sandbox, a suspended one, or none —
// never a gated Pod, a Pod without its workspace, or a workspace without
// its record.
func TestPersistentInterrupted(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	class := storageFor(t, 8)
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("ctrl-c-%d", i)
		b := startAs(t, env.kubeconfig, []string{"create", name, "-n", ns, "--persist=1Gi", "--storage-class", class})
		interruptSoon(t, b, i)
		checkWholeOrNothing(t, ns, name)
	}
	createSandbox(t, ns, "resumed", "--persist=1Gi", "--storage-class", class)
	for i := 0; i < 4; i++ {
		mustPlugin(t, "", "suspend", "resumed", "-n", ns)
		b := startAs(t, env.kubeconfig, []string{"resume", "resumed", "-n", ns})
		interruptSoon(t, b, i)
		checkWholeOrNothing(t, ns, "resumed")
		if _, ok := getWorkspace(t, ns, "resumed"); !ok {
			t.Fatal("an interrupted resume lost the workspace")
		}
		mustPlugin(t, "", "resume", "resumed", "-n", ns)
	}
}

// wantLastError is wantError for a command that prints progress first:
// the error is its last line, and its only one.
func wantLastError(t *testing.T, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if r.code == 0 || !strings.HasPrefix(last, "error: ") || !strings.Contains(last, want) || strings.Count(r.stderr, "error: ") != 1 {
		t.Fatalf("want one last error line saying %q:\n%s", want, r)
	}
}

// interruptSoon sends Ctrl-C at one of a spread of moments (early ones
// before much is made, later ones mid-way), unless the command has
// already ended (the simulated node is quick).
func interruptSoon(t *testing.T, b *background, i int) {
	t.Helper()
	// Not before the plugin talks to the API server: a Ctrl-C before main
	// has set up its signal handling kills it outright (as it would any
	// program), which says nothing of the plugin; on a loaded machine a
	// fixed delay was not always enough (exit -1, killed by SIGINT).
	if !talking(t, b) {
		return
	}
	select {
	case <-b.done:
		return
	case <-time.After(time.Duration(i*100+rand.IntN(50)) * time.Millisecond):
	}
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		<-b.done // it ended meanwhile
		return
	}
	<-b.done
	if r := b.result(); r.code != 130 && r.code != 0 {
		t.Fatalf("after Ctrl-C: exit %d, want 130 (or 0 when it had finished):\n%s", r.code, r)
	}
}

// talking waits until b's process has a socket open (its first
// connection to the API server, made after main set up signal handling),
// or has ended (false).
func talking(t *testing.T, b *background) bool {
	t.Helper()
	fds := fmt.Sprintf("/proc/%d/fd", b.cmd.Process.Pid)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-b.done:
			return false
		default:
		}
		entries, _ := os.ReadDir(fds)
		for _, e := range entries {
			if target, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
				return true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the plugin opened no connection in a minute: %s", b.result())
	return false
}

func checkWholeOrNothing(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, time.Minute, name+" to settle", func() bool {
		pod, hasPod := getSandboxPod(t, ns, name)
		pvc, hasWorkspace := getWorkspace(t, ns, name)
		switch {
		case hasPod && (len(pod.Spec.SchedulingGates) > 0 || pod.DeletionTimestamp != nil):
			return false // still being undone
		case hasPod && !hasWorkspace:
			return false // the garbage collector takes it
		case hasWorkspace && pvc.Annotations[sandbox.AnnotationRecord] == "":
			t.Fatalf("workspace of %s without its record", name)
		}
		return true
	})
}

// gc deletes the workspace of a sandbox suspended longer than its
// --retain, and keeps the others.
func TestGCDeletesRetainedWorkspaces(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	class := storageFor(t, 2)
	createSandbox(t, ns, "old", "--persist=1Gi", "--storage-class", class, "--retain", "1h")
	createSandbox(t, ns, "young", "--persist=1Gi", "--storage-class", class, "--retain", "1h")
	mustPlugin(t, "", "suspend", "old", "young", "-n", ns)
	suspendedLongAgo(t, ns, "old", 2*time.Hour)
	list := mustPlugin(t, "", "list", "-n", ns)
	if !strings.Contains(list.stdout, "gc in ") {
		t.Fatalf("list does not say when gc takes the young workspace:\n%s", list.stdout)
	}
	r := mustPlugin(t, "", "gc", "-n", ns)
	if !strings.Contains(r.stdout, "workspace/old deleted") || strings.Contains(r.stdout, "young") {
		t.Fatalf("gc printed:\n%s", r.stdout)
	}
	eventually(t, time.Minute, "the old workspace to go", func() bool { _, ok := getWorkspace(t, ns, "old"); return !ok })
	if _, ok := getWorkspace(t, ns, "young"); !ok {
		t.Fatal("gc deleted a workspace within its retain")
	}
}

// run --persist works in the sandbox of its name, and keeps it: the
// first run makes it and suspends it at the end, the second resumes it.
func TestRunPersistKeepsItsSandbox(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	class := storageFor(t, 1)
	r := mustPlugin(t, "", "run", "kept", "-n", ns, "--persist=1Gi", "--storage-class", class, "--", "echo", "first")
	if strings.TrimSpace(r.stdout) != "first" || !strings.Contains(r.stderr, "sandbox/kept suspended, its work kept") {
		t.Fatalf("first run --persist:\n%s", r)
	}
	if _, ok := getSandboxPod(t, ns, "kept"); ok {
		t.Fatal("run --persist left the Pod running")
	}
	if _, ok := getWorkspace(t, ns, "kept"); !ok {
		t.Fatal("run --persist did not keep the workspace")
	}
	r = mustPlugin(t, "", "run", "kept", "-n", ns, "--persist=1Gi", "--storage-class", class, "--", "echo", "second")
	if strings.TrimSpace(r.stdout) != "second" || !strings.Contains(r.stderr, "resuming sandbox/kept") || !strings.Contains(r.stderr, "using sandbox/kept and its workspace") {
		t.Fatalf("second run --persist:\n%s", r)
	}
	// A disposable sandbox of the name is not one run --persist takes over.
	createSandbox(t, ns, "plain")
	r = plugin(t, "", "run", "plain", "-n", ns, "--persist=1Gi", "--storage-class", class, "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, `sandbox "plain" already exists`) {
		t.Fatalf("run --persist over a disposable sandbox:\n%s", r)
	}
	mustPlugin(t, "", "delete", "kept", "plain", "-n", ns)
	eventually(t, time.Minute, "nothing left", func() bool { return len(objectsLeft(t, ns)) == 0 })
}

// suspendedLongAgo back-dates a suspended sandbox's suspension by ago. A
// merge patch, not an update: the PV controller writes the claim too, and
// an update that lost that race failed the test.
func suspendedLongAgo(t *testing.T, ns, name string, ago time.Duration) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, sandbox.AnnotationSuspendedAt, time.Now().Add(-ago).UTC().Format(time.RFC3339))
	if _, err := env.cs.CoreV1().PersistentVolumeClaims(ns).Patch(context.Background(), sandbox.WorkspaceName(name), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
