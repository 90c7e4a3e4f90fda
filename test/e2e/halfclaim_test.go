package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A claimant killed half-way, as a new user would try it: ten real
// `create NAME --pool P --secret-env TOKEN` processes of the real binary,
// each killed with SIGKILL at a random moment, round after round, against
// the real API server. After each round every name is either whole (exec
// sees the secret), refused with the half-claim line, or not there — exec
// never runs without the secret. Claiming a refused name again completes
// it, and gc removes what is left half-claimed once the grace is past.
func TestClaimantsKilledHalfWay(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	const secret = "tok-'half' $claim"
	t.Setenv("E2E_HALF_TOKEN", secret)
	mustPlugin(t, "", "pool", "create", "p", "--size", "10", "-n", ns)

	const rounds, claimants = 3, 10
	halfSeen := 0
	for round := range rounds {
		var wg sync.WaitGroup
		for i := range claimants {
			name := fmt.Sprintf("r%dc%d", round, i)
			wg.Go(func() {
				cmd := exec.Command(env.binary, "--kubeconfig", env.kubeconfig, "create", name, "--pool", "p", "-n", ns, "--secret-env", "E2E_HALF_TOKEN")
				cmd.Env = os.Environ()
				if err := cmd.Start(); err != nil {
					t.Error(err)
					return
				}
				// Most kills land while the claim is in flight: its write,
				// its delivery, its refill.
				time.Sleep(time.Duration(rand.Int64N(int64(1500 * time.Millisecond))))
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			})
		}
		wg.Wait()

		var refused []string
		for i := range claimants {
			name := fmt.Sprintf("r%dc%d", round, i)
			r := plugin(t, "", "exec", name, "-n", ns, "--", "sh", "-c", `printf %s "$E2E_HALF_TOKEN"`)
			switch {
			case r.code == 0:
				if r.stdout != secret && !coldWithSecret(t, ns, name, secret) {
					t.Fatalf("round %d: exec in %s ran without the claim's secret (stdout %q):\n%s", round, name, r.stdout, r)
				}
			case strings.Contains(r.stderr, "never finished") || strings.Contains(r.stderr, "still being claimed"):
				if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.HasPrefix(r.stderr, "error: sandbox \""+name+"\"") {
					t.Fatalf("round %d: the refusal is not one line of ours:\n%s", round, r)
				}
				refused = append(refused, name)
			default:
				// Killed before its claim's write (not found), or a cold
				// create killed before its Pod ran: nothing ran either way.
				t.Logf("round %d: %s: %s", round, name, strings.TrimSpace(r.stderr))
			}
		}
		halfSeen += len(refused)
		for _, name := range refused {
			if round == rounds-1 {
				continue // left for gc
			}
			// Claiming the name again replaces the half-claimed sandbox.
			mustPlugin(t, "", "create", name, "--pool", "p", "-n", ns, "--secret-env", "E2E_HALF_TOKEN")
			if r := mustPlugin(t, "", "exec", name, "-n", ns, "--", "sh", "-c", `printf %s "$E2E_HALF_TOKEN"`); r.stdout != secret {
				t.Fatalf("after claiming %s again, exec sees %q", name, r.stdout)
			}
		}
		if round == rounds-1 && len(refused) > 0 {
			time.Sleep(sandbox.ClaimGrace + time.Second)
			mustPlugin(t, "", "gc", "-n", ns)
			for _, name := range refused {
				r := plugin(t, "", "exec", name, "-n", ns, "--", "true")
				if r.code == 0 || strings.Contains(r.stderr, "never finished") {
					t.Fatalf("gc left the half-claimed %s:\n%s", name, r)
				}
			}
		}
	}
	t.Logf("%d half-claimed sandboxes seen in %d rounds of %d SIGKILLed claimants", halfSeen, rounds, claimants)
	mustPlugin(t, "", "delete", "--all", "-n", ns)
	mustPlugin(t, "", "pool", "delete", "p", "-n", ns)
}

// coldWithSecret reports whether name was made cold (the pool had no ready
// member left: no claim, so no environment file) and holds the secret in
// its own Secret, owned by its Pod. The kubelet gives such a sandbox the
// secret through envFrom, which the simulated node does not; its Pod is
// started only once that Secret exists (the create path's gate), so a
// Running cold sandbox always has it.
func coldWithSecret(t *testing.T, ns, name, secret string) bool {
	t.Helper()
	ctx := context.Background()
	pod, err := sandbox.Find(ctx, env.cs, ns, name)
	if err != nil || pool.ClaimedFrom(pod) != "" {
		return false
	}
	s, err := env.cs.CoreV1().Secrets(ns).Get(ctx, sandbox.SecretName(name), metav1.GetOptions{})
	if err != nil || string(s.Data["E2E_HALF_TOKEN"]) != secret {
		return false
	}
	owner := metav1.GetControllerOfNoCopy(s)
	return owner != nil && owner.UID == pod.UID && len(pod.Spec.SchedulingGates) == 0
}
