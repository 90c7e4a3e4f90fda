package realnode

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An admin's questions on a real kubelet with kube-network-policies
// enforcing: where can the agent's traffic go (--allow-egress), and does
// this cluster enforce NetworkPolicy at all (doctor --probe).

// TestAllowEgress: a sandbox allowed one destination reaches it, and not
// another Pod beside it that an unfenced Pod reaches. Both are private
// addresses: the allowed one only because the rule names it.
func TestAllowEgress(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	allowed := s.startServer(ctx, t, "eg-allowed")
	blocked := s.startServer(ctx, t, "eg-blocked")
	s.startPod(ctx, t, hardenedPod("eg-control", SandboxImage, sleeper, nil))
	for _, ip := range []string{allowed, blocked} {
		if ok, r := s.canConnect(ctx, false, "eg-control", ip); !ok {
			t.Fatalf("the unfenced control pod cannot reach %s: %s", ip, r)
		}
	}
	const name = "sb-allow-egress"
	s.createSandbox(ctx, t, name, "--allow-egress", allowed+"/32:8080", "--cpu", "100m", "--memory", "64Mi", "--ephemeral-storage", "64Mi")
	if !s.fenced(ctx, t, name) {
		t.Fatalf("no NetworkPolicy selects %s", name)
	}
	// The blocked one first: the fence must hold from the first packet.
	if ok, r := s.canConnect(ctx, true, name, blocked); ok {
		t.Errorf("the sandbox reached %s, which no rule allows: %s", blocked, r)
	}
	var last result
	err := poll(ctx, 90*time.Second, func() (bool, error) {
		ok, r := s.canConnect(ctx, true, name, allowed)
		last = r
		return ok, nil
	})
	if err != nil {
		t.Fatalf("the sandbox does not reach %s:8080, which --allow-egress allows: %v; last try: %s\n%s", allowed, err, last, s.node.Diagnostics())
	}
	if ok, r := s.canConnect(ctx, true, name, blocked); ok {
		t.Errorf("once the allowed destination answers, the sandbox still reaches %s: %s", blocked, r)
	}
}

// TestDoctorProbe: the probe finds NetworkPolicy enforced here, and
// leaves nothing behind.
func TestDoctorProbe(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	c, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	r := s.pluginRun(c, "", "doctor", "-n", s.namespace, "--probe", "--timeout", "8m", "-o", "json")
	record("plugin: doctor --probe", time.Since(t0))
	var report struct { // a DoctorFindingList
		Failed int
		Items  []struct{ Check, Status, Found, Action string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("doctor -o json: %v\n%s\n%s", err, r, s.node.Diagnostics())
	}
	probed := false
	for _, f := range report.Items {
		t.Logf("%s %s: %s", f.Status, f.Check, f.Found)
		if f.Check == "network-policy" {
			probed = true
			if f.Status != "ok" || !strings.Contains(f.Found, "enforced: a fenced sandbox reached an unfenced one") ||
				!strings.Contains(f.Found, "nor through its public-internet rule to that private address") {
				t.Errorf("the probe did not find NetworkPolicy enforced: %s %s -> %s\n%s", f.Status, f.Found, f.Action, r.stderr)
			}
		}
	}
	if !probed {
		t.Errorf("no network-policy finding:\n%s", r)
	}
	if r.code != 0 || report.Failed != 0 {
		t.Errorf("doctor failed on the real node:\n%s", r)
	}
	err := poll(ctx, deleteTimeout, func() (bool, error) {
		pods, err := s.client.CoreV1().Pods(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: sandboxLabel})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if strings.HasPrefix(p.Labels[sandboxLabel], "doctor-") {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("the probe's sandboxes are still there: %v", err)
	}
}
