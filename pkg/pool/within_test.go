package pool

import (
	"strings"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

func egressSpec(t *testing.T, allow ...string) sandbox.Spec {
	t.Helper()
	s := sandbox.NewSpec("demo", "agents")
	s.Network, s.ReadOnlyRoot = sandbox.NetworkEgress, false
	for _, a := range allow {
		d, err := fence.ParseEgress("--allow-egress", a)
		if err != nil {
			t.Fatal(err)
		}
		s.AllowEgress = append(s.AllowEgress, d)
	}
	return s
}

// A claim that insists on --network egress does not get a pool's sandbox
// that reaches 10.0.0.0/8; one that reaches less is the claim's.
func TestClaimNetworkComparesReach(t *testing.T) {
	claim := egressSpec(t)
	for _, c := range []struct {
		pool []string
		want string
	}{
		{[]string{"10.0.0.0/8"}, "may reach 10.0.0.0/8, beyond the claim's `network` egress"},
		{[]string{"169.254.169.254:80"}, "may reach 169.254.169.254/32:80/TCP"},
		{[]string{"8.8.8.8:443"}, ""},
		{nil, ""},
	} {
		pool := egressSpec(t, c.pool...)
		got := differs("network", &pool, &claim)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("pool --allow-egress %v: differs = %q, want %q", c.pool, got, c.want)
		}
	}
}
