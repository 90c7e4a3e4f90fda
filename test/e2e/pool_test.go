package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// sandboxLabels returns every value the agentkernel/sandbox label of Pod
// uid ever had, in order, from the recorded events.
func (e *podEvents) sandboxLabels(uid types.UID) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, p := range e.pods {
		if v := p.Labels[sandbox.LabelSandbox]; p.UID == uid && v != "" && (len(out) == 0 || out[len(out)-1] != v) {
			out = append(out, v)
		}
	}
	return out
}

// warmMembers lists the unclaimed members of pool in ns.
func warmMembers(t *testing.T, ns, pool string) (ready, all []corev1.Pod) {
	t.Helper()
	list, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: sandbox.ManagedSelector + "," + sandbox.LabelPool + "=" + pool + ",!" + sandbox.LabelSandbox,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		all = append(all, p)
		if ok, _ := sandbox.Started(&p, ""); ok {
			ready = append(ready, p)
		}
	}
	return ready, all
}

// sandboxPods maps each sandbox name in ns to its live Pods.
func sandboxPods(t *testing.T, ns string) map[string][]corev1.Pod {
	t.Helper()
	list, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sandbox.SandboxSelector})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]corev1.Pod{}
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out[p.Labels[sandbox.LabelSandbox]] = append(out[p.Labels[sandbox.LabelSandbox]], p)
		}
	}
	return out
}

func podTemplatesLeft(t *testing.T, ns string) int {
	t.Helper()
	list, err := env.cs.CoreV1().PodTemplates(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// eventuallyNoPoolLeft waits (a minute at most) until the namespace holds
// none of the plugin's objects and no pool's PodTemplate.
func eventuallyNoPoolLeft(t *testing.T, ns string) {
	t.Helper()
	eventually(t, time.Minute, "nothing left", func() bool { return len(objectsLeft(t, ns)) == 0 && podTemplatesLeft(t, ns) == 0 })
}

// The whole life of a pool against the real API server, controller-manager
// (garbage collector) and scheduler: a pool of 10 becomes ready; 20 claims
// from 20 processes at once get 20 sandboxes, no member claimed twice, every
// member claimed once; the claimants refill the pool to exactly 10; a
// claimed sandbox is hardened and fenced like a cold one; pool delete
// leaves claimed sandboxes alone.
func TestPoolClaimsFromParallelProcesses(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	ctx := context.Background()
	events := recordPodEvents(t, ns)

	r := mustPlugin(t, "", "pool", "create", "warm", "--size", "10", "-n", ns, "--network", "none")
	if r.stdout != "pool/warm created (10 of 10 ready)\n" {
		t.Fatalf("pool create printed %q", r.stdout)
	}
	ready, _ := warmMembers(t, ns, "warm")
	if len(ready) != 10 {
		t.Fatalf("%d ready members after pool create, want 10", len(ready))
	}
	members := map[types.UID]string{}
	for _, p := range ready {
		members[p.UID] = p.Name
	}

	const claims = 20
	results := make([]result, claims)
	var wg sync.WaitGroup
	for i := range claims {
		wg.Go(func() { results[i] = plugin(t, "", "create", fmt.Sprintf("c%d", i), "--pool", "warm", "-n", ns) })
	}
	wg.Wait()

	byName := sandboxPods(t, ns)
	warm := 0
	claimedPods := map[types.UID]string{}
	for i, r := range results {
		name := fmt.Sprintf("c%d", i)
		if r.code != 0 {
			t.Fatalf("claim %s:\n%s", name, r)
		}
		pods := byName[name]
		if len(pods) != 1 {
			t.Fatalf("sandbox %s has %d pods", name, len(pods))
		}
		pod := pods[0]
		if other, dup := claimedPods[pod.UID]; dup {
			t.Fatalf("pod %s was given to both %s and %s", pod.Name, other, name)
		}
		claimedPods[pod.UID] = name
		switch r.stdout {
		case "sandbox/" + name + " created (claimed warm from pool warm)\n":
			warm++
			if !strings.HasPrefix(pod.Name, sandbox.PoolMemberPrefix("warm")) {
				t.Fatalf("%s says warm but its pod is %s", name, pod.Name)
			}
		default:
			if !strings.HasPrefix(r.stdout, "sandbox/"+name+` created (cold: pool "warm" has no ready member`) || pod.Name != "agentkernel-"+name {
				t.Fatalf("%s: stdout %q, pod %s", name, r.stdout, pod.Name)
			}
		}
	}
	// Every one of the 10 original members was claimed, exactly once.
	for uid, name := range members {
		if labels := events.sandboxLabels(uid); len(labels) != 1 {
			t.Errorf("member %s carried sandbox names %v: want exactly one claim", name, labels)
		}
		if _, ok := claimedPods[uid]; !ok {
			t.Errorf("member %s was never claimed", name)
		}
	}
	// A member that became ready during the burst may have been claimed
	// warm too, so at least 10 were warm; every claimed pod had one name.
	if warm < 10 {
		t.Fatalf("%d claims were warm, want at least the 10 ready members", warm)
	}
	for uid, name := range claimedPods {
		if labels := events.sandboxLabels(uid); len(labels) != 1 || labels[0] != name {
			t.Errorf("pod of %s carried sandbox names %v", name, labels)
		}
	}
	t.Logf("%d of %d claims warm, %d cold", warm, claims, claims-warm)

	// Each warm claim made exactly one replacement; nobody else made any
	// (list --no-reconcile only looks).
	eventually(t, 2*time.Minute, "the pool refilled to 10 ready", func() bool {
		ready, all := warmMembers(t, ns, "warm")
		if len(all) > 10 {
			t.Fatalf("the pool has %d members, more than its size", len(all))
		}
		return len(ready) == 10
	})
	r = mustPlugin(t, "", "pool", "list", "-n", ns, "--no-reconcile", "-o", "jsonpath={.items[0].status.ready}/{.items[0].status.claimed}")
	if r.stdout != fmt.Sprintf("10/%d", warm) {
		t.Fatalf("pool list says ready/claimed %q, want 10/%d", r.stdout, warm)
	}

	// A claimed sandbox is a cold one in all that matters.
	mustPlugin(t, "", "create", "coldref", "-n", ns, "--network", "none")
	cold := sandboxPods(t, ns)["coldref"][0]
	var claimed corev1.Pod
	for _, p := range byName {
		if strings.HasPrefix(p[0].Name, sandbox.PoolMemberPrefix("warm")) {
			claimed = p[0]
			break
		}
	}
	if err := sandbox.Ours(&claimed, claimed.Labels[sandbox.LabelSandbox]); err != nil {
		t.Fatalf("claimed pod %s: %v", claimed.Name, err)
	}
	if len(claimed.OwnerReferences) != 0 {
		t.Fatalf("claimed pod %s is still owned: %v", claimed.Name, claimed.OwnerReferences)
	}
	hardening := func(p *corev1.Pod) any {
		c := p.Spec.Containers[0]
		return []any{p.Spec.SecurityContext, c.SecurityContext, c.Resources, p.Spec.Volumes, c.VolumeMounts, p.Spec.RestartPolicy,
			p.Spec.AutomountServiceAccountToken, p.Spec.EnableServiceLinks, p.Spec.HostNetwork, p.Spec.HostPID, c.Command}
	}
	if !reflect.DeepEqual(hardening(&claimed), hardening(&cold)) {
		a, _ := json.Marshal(hardening(&claimed))
		b, _ := json.Marshal(hardening(&cold))
		t.Fatalf("a claimed sandbox differs from a cold one:\nclaimed %s\ncold    %s", a, b)
	}
	// Admitted under restricted (the namespace enforces it), fenced before
	// it could run, and still fenced after the claim.
	createdGated, ungatedAt := events.gateHistory(t, claimed.UID)
	np, err := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, claimed.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("claimed sandbox %s has no NetworkPolicy: %v", claimed.Name, err)
	}
	sel, _ := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if !createdGated || ungatedAt == 0 || rv(t, np.ResourceVersion) >= ungatedAt || !sel.Matches(labels.Set(claimed.Labels)) ||
		len(np.OwnerReferences) != 1 || np.OwnerReferences[0].UID != claimed.UID || len(np.Spec.Ingress)+len(np.Spec.Egress) != 0 {
		t.Fatalf("claimed sandbox's fence: gated=%v ungated@%d policy@%s selects=%v owners=%v rules=%v/%v",
			createdGated, ungatedAt, np.ResourceVersion, sel.Matches(labels.Set(claimed.Labels)), np.OwnerReferences, np.Spec.Ingress, np.Spec.Egress)
	}
	name := claimed.Labels[sandbox.LabelSandbox]
	if r := mustPlugin(t, "", "exec", name, "-n", ns, "--", "echo", "in", name); r.stdout != "in "+name+"\n" {
		t.Fatalf("exec in claimed sandbox: %q", r.stdout)
	}
	if r := mustPlugin(t, "", "list", "-n", ns, "-o", "name"); strings.Count(r.stdout, "sandbox/") != claims+1 {
		t.Fatalf("list shows:\n%s", r.stdout)
	}

	// pool delete: the definition and the warm members go, claimed stay.
	r = mustPlugin(t, "", "pool", "delete", "warm", "-n", ns)
	if r.stdout != fmt.Sprintf("pool/warm deleted (10 warm sandboxes removed, %d claimed kept)\n", warm) {
		t.Fatalf("pool delete printed %q", r.stdout)
	}
	if _, all := warmMembers(t, ns, "warm"); len(all) != 0 || podTemplatesLeft(t, ns) != 0 {
		t.Fatalf("after pool delete: %d members, %d podtemplates", len(all), podTemplatesLeft(t, ns))
	}
	after := sandboxPods(t, ns)
	for i := range claims {
		if len(after[fmt.Sprintf("c%d", i)]) != 1 {
			t.Fatalf("pool delete touched sandbox c%d", i)
		}
	}
	mustPlugin(t, "", "exec", name, "-n", ns, "--", "true")
	wantError(t, plugin(t, "", "pool", "delete", "warm", "-n", ns), `pool "warm" not found`)

	mustPlugin(t, "", "delete", "--all", "-n", ns)
	eventually(t, time.Minute, "everything gone", func() bool { return len(objectsLeft(t, ns)) == 0 })
}

// Per-claim secrets reach a warm sandbox without a cold start, and never
// appear in the Pod, its events, or --dry-run output; delete of the claimed
// sandbox removes its Secret.
func TestClaimedSandboxGetsItsSecret(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	ctx := context.Background()
	const secret = "sk-claim-'quoted' $value"
	t.Setenv("E2E_CLAIM_KEY", secret)
	mustPlugin(t, "", "pool", "create", "s", "--size", "1", "-n", ns)

	r := mustPlugin(t, "", "create", "task", "--pool", "s", "-n", ns, "--secret-env", "E2E_CLAIM_KEY", "--env", "MODE=review", "--dry-run=client", "-o", "yaml")
	dryRun := r.stdout
	r = mustPlugin(t, "", "create", "task", "--pool", "s", "-n", ns, "--secret-env", "E2E_CLAIM_KEY", "--env", "MODE=review", "--ttl", "1h")
	if r.stdout != "sandbox/task created (claimed warm from pool s)\n" {
		t.Fatalf("create --pool printed %q", r.stdout)
	}
	r = mustPlugin(t, "", "exec", "task", "-n", ns, "--", "sh", "-c", `printf '%s|%s' "$E2E_CLAIM_KEY" "$MODE"`)
	if r.stdout != secret+"|review" {
		t.Fatalf("the claimed sandbox sees %q", r.stdout)
	}
	// exec -e still wins over the claim's environment.
	if r := mustPlugin(t, "", "exec", "task", "-n", ns, "-e", "MODE=override", "--", "sh", "-c", `printf %s "$MODE"`); r.stdout != "override" {
		t.Fatalf("exec -e MODE: %q", r.stdout)
	}
	pod := sandboxPods(t, ns)["task"][0]
	sec, err := env.cs.CoreV1().Secrets(ns).Get(ctx, pod.Name+"-env", metav1.GetOptions{})
	if err != nil || string(sec.Data["E2E_CLAIM_KEY"]) != secret || len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != pod.UID {
		t.Fatalf("the claim's secret: %v %v", sec, err)
	}
	if pod.Spec.ActiveDeadlineSeconds == nil || *pod.Spec.ActiveDeadlineSeconds < 3600 {
		t.Fatalf("the claim's TTL: %v", pod.Spec.ActiveDeadlineSeconds)
	}
	if r := mustPlugin(t, "", "list", "-n", ns); !strings.Contains(r.stdout, "in 59m") && !strings.Contains(r.stdout, "in 60m") {
		t.Fatalf("list does not show when it expires:\n%s", r.stdout)
	}
	podJSON, _ := json.Marshal(pod)
	evs, err := env.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evJSON, _ := json.Marshal(evs)
	for what, text := range map[string]string{"the pod": string(podJSON), "the events": string(evJSON), "the dry run": dryRun} {
		for _, needle := range []string{secret, "sk-claim", base64.StdEncoding.EncodeToString([]byte(secret))} {
			if strings.Contains(text, needle) {
				t.Errorf("the secret is in %s", what)
			}
		}
	}
	if !strings.Contains(dryRun, "E2E_CLAIM_KEY: <redacted>") {
		t.Errorf("the dry run does not show the secret's key:\n%s", dryRun)
	}

	mustPlugin(t, "", "delete", "task", "-n", ns)
	eventually(t, time.Minute, "the claim's Secret and NetworkPolicy removed with its pod", func() bool {
		_, err := env.cs.CoreV1().Secrets(ns).Get(ctx, pod.Name+"-env", metav1.GetOptions{})
		_, nerr := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) && apierrors.IsNotFound(nerr)
	})
	mustPlugin(t, "", "pool", "delete", "s", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}

// Bad input and pools that cannot start: clear errors, non-zero exits,
// nothing left behind.
func TestPoolErrors(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	ctx := context.Background()
	wantError(t, plugin(t, "", "pool", "create", "p", "--size", "0", "-n", ns), "--size must be at least 1")
	wantError(t, plugin(t, "", "pool", "create", "p", "--size", "-2", "-n", ns), "--size must not be negative")
	wantError(t, plugin(t, "", "pool", "create", "p", "-n", ns), `required flag(s) "size" not set`)
	wantError(t, plugin(t, "", "create", "x", "--pool", "nope", "-n", ns), `pool "nope" not found in namespace "`+ns+`"`)
	assertNothingLeft(t, ns)

	// Members that cannot start: pool create fails fast with the reason and
	// removes what it made.
	start := time.Now()
	r := plugin(t, "", "pool", "create", "nowhere", "--size", "2", "-n", ns, "--node-selector", "e2e.agentkernel/no-such-node=true")
	wantError(t, r, `pool "nowhere" in namespace "`+ns+`" cannot start its members: Unschedulable`)
	t.Logf("failed in %s", time.Since(start))
	eventually(t, time.Minute, "the failed pool removed", func() bool { return len(objectsLeft(t, ns)) == 0 && podTemplatesLeft(t, ns) == 0 })

	// Without waiting it stays; pool list and a claim say why.
	mustPlugin(t, "", "pool", "create", "nowhere", "--size", "2", "-n", ns, "--node-selector", "e2e.agentkernel/no-such-node=true", "--wait=false")
	eventually(t, time.Minute, "pool list to show the members' problem", func() bool {
		r := mustPlugin(t, "", "pool", "list", "-n", ns)
		return strings.Contains(r.stdout, "2 × Unschedulable: 0/1 nodes are available")
	})
	r = plugin(t, "", "create", "x", "--pool", "nowhere", "-n", ns)
	wantError(t, r, `pool "nowhere" has no ready member (2 starting: 2 × Unschedulable`)
	if !strings.Contains(r.stderr, "creating the sandbox cold failed") {
		t.Fatalf("the claim does not say the cold create failed too:\n%s", r)
	}
	wantError(t, plugin(t, "", "create", "x", "--pool", "nowhere", "-n", ns, "--pool-wait", "--timeout", "1m"), "cannot start its members: Unschedulable")
	if len(sandboxPods(t, ns)) != 0 {
		t.Fatal("a failed claim left a sandbox")
	}

	// A name clash, ours and someone else's.
	wantError(t, plugin(t, "", "pool", "create", "nowhere", "--size", "1", "-n", ns), `pool "nowhere" already exists`)
	foreign := &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Name: pool.PoolTemplateName("theirs")}, Template: corev1.PodTemplateSpec{
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}}
	if _, err := env.cs.CoreV1().PodTemplates(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantError(t, plugin(t, "", "pool", "create", "theirs", "--size", "1", "-n", ns), "was not made by kubectl agentkernel")
	wantError(t, plugin(t, "", "pool", "delete", "theirs", "-n", ns), "was not made by kubectl agentkernel")
	if _, err := env.cs.CoreV1().PodTemplates(ns).Get(ctx, foreign.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("the foreign PodTemplate was touched: %v", err)
	}

	// A claim that insists on another shape is refused before anything is claimed.
	mustPlugin(t, "", "pool", "create", "ok", "--size", "1", "-n", ns)
	wantError(t, plugin(t, "", "create", "x", "--pool", "ok", "-n", ns, "--image", "docker.io/library/alpine:3"),
		`pool "ok" in namespace "`+ns+`" does not match this claim: --image: the pool has "docker.io/library/busybox:1.37.0"`)
	wantError(t, plugin(t, "", "create", "x", "--pool", "ok", "-n", ns, "--profile", "permissive"), `--profile: the pool has "restrictive", the claim asks for "permissive"`)
	if ready, _ := warmMembers(t, ns, "ok"); len(ready) != 1 || len(sandboxPods(t, ns)) != 0 {
		t.Fatal("a refused claim took a member")
	}

	mustPlugin(t, "", "pool", "delete", "nowhere", "ok", "-n", ns)
	if err := env.cs.CoreV1().PodTemplates(ns).Delete(ctx, foreign.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyNoPoolLeft(t, ns)
}

// Ctrl-C while a claim waits for a member (--pool-wait) and while pool
// create waits for its members: exit 130, nothing claimed, nothing left.
func TestInterruptedClaimAndPoolCreate(t *testing.T) {
	requireSimulated(t) // the simulated node never readies pods labelled e2e.agentkernel/hold
	ns := newNamespace(t)
	mustPlugin(t, "", "pool", "create", "held", "--size", "1", "-n", ns, "--label", localcluster.HoldLabel+"=true", "--wait=false")

	interrupt := func(args ...string) {
		t.Helper()
		cmd := exec.Command(env.binary, append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // well into its wait
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if exitErr, ok := err.(*exec.ExitError); !ok || exitErr.ExitCode() != 130 || !strings.Contains(stderr.String(), "interrupted") {
			t.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
	}
	interrupt("create", "x", "--pool", "held", "--pool-wait", "-n", ns)
	if len(sandboxPods(t, ns)) != 0 {
		t.Fatal("the interrupted claim left a sandbox")
	}
	if _, all := warmMembers(t, ns, "held"); len(all) != 1 {
		t.Fatalf("the pool has %d members after an interrupted claim, want 1", len(all))
	}

	interrupt("pool", "create", "held2", "--size", "2", "-n", ns, "--label", localcluster.HoldLabel+"=true")
	eventually(t, time.Minute, "the interrupted pool create removed what it made", func() bool {
		_, all := warmMembers(t, ns, "held2")
		_, err := env.cs.CoreV1().PodTemplates(ns).Get(context.Background(), pool.PoolTemplateName("held2"), metav1.GetOptions{})
		return len(all) == 0 && apierrors.IsNotFound(err)
	})
	mustPlugin(t, "", "pool", "delete", "held", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}

// Claims racing pool delete, round after round: every claim ends with a
// sandbox of its own (warm or cold) or a clear "not found"; no Pod is ever
// both claimed and owned by the pool; when the dust settles no member is
// left, because the garbage collector removes members made after their
// pool was gone.
func TestClaimsRacingPoolDelete(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	events := recordPodEvents(t, ns)
	const rounds, claimants = 6, 5
	for round := range rounds {
		pool := fmt.Sprintf("r%d", round)
		mustPlugin(t, "", "pool", "create", pool, "--size", "3", "-n", ns)
		var wg sync.WaitGroup
		results := make([]result, claimants)
		for i := range claimants {
			wg.Go(func() { results[i] = plugin(t, "", "create", fmt.Sprintf("%s-c%d", pool, i), "--pool", pool, "-n", ns) })
		}
		var del result
		wg.Go(func() {
			time.Sleep(time.Duration(round) * 50 * time.Millisecond)
			del = plugin(t, "", "pool", "delete", pool, "-n", ns, "--wait=false")
		})
		wg.Wait()
		if del.code != 0 {
			t.Fatalf("round %d: pool delete:\n%s", round, del)
		}
		byName := sandboxPods(t, ns)
		outcomes := map[string]int{}
		for i, r := range results {
			name := fmt.Sprintf("%s-c%d", pool, i)
			switch {
			case strings.Contains(r.stdout, "claimed warm"):
				outcomes["warm"]++
			case strings.Contains(r.stdout, "cold"):
				outcomes["cold"]++
			default:
				outcomes["refused"]++
			}
			switch {
			case r.code == 0:
				if len(byName[name]) != 1 {
					t.Fatalf("round %d: %s succeeded but has %d pods", round, name, len(byName[name]))
				}
			case strings.Contains(r.stderr, `pool "`+pool+`" not found`):
				if len(byName[name]) != 0 {
					t.Fatalf("round %d: %s failed but left a sandbox", round, name)
				}
			default:
				t.Fatalf("round %d: %s: unexpected failure:\n%s", round, name, r)
			}
		}
		t.Logf("round %d (pool delete after %d ms): %v", round, round*50, outcomes)
		eventually(t, time.Minute, "no member of the deleted pool left", func() bool {
			_, all := warmMembers(t, ns, pool)
			return len(all) == 0
		})
	}
	events.mu.Lock()
	for _, p := range events.pods {
		if p.Labels[sandbox.LabelSandbox] != "" && len(p.OwnerReferences) > 0 {
			t.Errorf("pod %s was claimed as %s while still owned by %v", p.Name, p.Labels[sandbox.LabelSandbox], p.OwnerReferences)
		}
	}
	events.mu.Unlock()
	for name, pods := range sandboxPods(t, ns) {
		if len(pods) != 1 {
			t.Errorf("sandbox %s has %d pods", name, len(pods))
		}
		if labels := events.sandboxLabels(pods[0].UID); len(labels) != 1 {
			t.Errorf("pod %s carried sandbox names %v", pods[0].Name, labels)
		}
	}
	mustPlugin(t, "", "delete", "--all", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}

// gc deletes sandboxes that ended and never a running or foreign one. The
// simulated node enforces neither activeDeadlineSeconds nor PID 1's idle
// timeout (no kubelet, no container), so the end is written into the Pod's
// status here as the kubelet would; test/realnode has the kubelet do it.
func TestGCDeletesWhatEnded(t *testing.T) {
	requireSimulated(t)
	ns := newNamespace(t)
	ctx := context.Background()
	createSandbox(t, ns, "expired", "--ttl", "1h")
	createSandbox(t, ns, "idle", "--idle-timeout", "10m")
	createSandbox(t, ns, "alive")
	end := func(name string, status corev1.PodStatus) {
		t.Helper()
		pod, err := env.cs.CoreV1().Pods(ns).Get(ctx, "agentkernel-"+name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status = status
		if _, err := env.cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	end("expired", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "DeadlineExceeded", Message: "Pod was active on the node longer than the specified deadline"})
	end("idle", corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{Name: sandbox.ContainerName, Image: sandbox.DefaultImage, ImageID: "x",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", Message: sandbox.IdleMessagePrefix + " no process but PID 1 ran for 600s"}}}}})
	// Someone else's finished pod carrying our labels.
	impostor := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "not-a-sandbox", Labels: map[string]string{
		sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelSandbox: "impostor"}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "x",
			SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: new(bool), RunAsNonRoot: ptrTrue(),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}}}}}
	if _, err := env.cs.CoreV1().Pods(ns).Create(ctx, impostor, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	r := mustPlugin(t, "", "gc", "-n", ns, "--dry-run")
	want := "sandbox/expired would be deleted (expired: its TTL (1h0m0s) ran out)\n" +
		"sandbox/idle would be deleted (idle: it stopped itself after 10m0s with nothing running)\n"
	if r.stdout != want {
		t.Fatalf("gc --dry-run printed:\n%s\nwant:\n%s", r.stdout, want)
	}
	if len(sandboxPods(t, ns)) != 4 {
		t.Fatal("gc --dry-run deleted something")
	}
	r = mustPlugin(t, "", "gc", "-n", ns)
	if r.stdout != strings.ReplaceAll(want, "would be deleted", "deleted") {
		t.Fatalf("gc printed:\n%s", r.stdout)
	}
	left := sandboxPods(t, ns)
	if len(left["expired"]) != 0 || len(left["idle"]) != 0 || len(left["alive"]) != 1 || len(left["impostor"]) != 1 {
		t.Fatalf("after gc: %v", left)
	}
	if r := mustPlugin(t, "", "gc", "-A", "--dry-run"); strings.Contains(r.stdout, " in "+ns+" ") {
		t.Fatalf("gc -A found more in %s:\n%s", ns, r.stdout)
	}
	mustPlugin(t, "", "delete", "alive", "-n", ns)
	if err := env.cs.CoreV1().Pods(ns).Delete(ctx, impostor.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "nothing left", func() bool { return len(objectsLeft(t, ns)) == 0 })
}

func ptrTrue() *bool { b := true; return &b }
