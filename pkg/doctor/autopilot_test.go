package doctor

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Autopilot's rules, from GKE's documentation, against sandboxes a user's
// flags can make: the defaults keep them.
func TestAutopilotProblems(t *testing.T) {
	cases := []struct {
		name string
		set  func(s *sandbox.Spec)
		want []string
	}{
		{name: "the defaults", set: func(*sandbox.Spec) {}},
		{name: "GKE Sandbox", set: func(s *sandbox.Spec) { s.RuntimeClassName = "gvisor" }},
		{name: "6 GiB per CPU", set: func(s *sandbox.Spec) { s.Memory = resource.MustParse("6Gi") }},
		{name: "too little memory per CPU", set: func(s *sandbox.Spec) { s.Memory = resource.MustParse("512Mi") }, want: []string{"raised: 0.5 GiB of memory per CPU"}},
		{name: "too much memory per CPU", set: func(s *sandbox.Spec) { s.Memory = resource.MustParse("8Gi") }, want: []string{"outside Autopilot's ratio of 1 to 6.5"}},
		{name: "below the minimum", set: func(s *sandbox.Spec) { s.CPU, s.Memory = resource.MustParse("10m"), resource.MustParse("32Mi") },
			want: []string{"raised: requests below the minimum"}},
		{name: "above the maximum", set: func(s *sandbox.Spec) { s.CPU, s.Memory = resource.MustParse("32"), resource.MustParse("64Gi") },
			want: []string{"refused: 32 CPU / 64Gi memory is above"}},
		{name: "too much ephemeral storage", set: func(s *sandbox.Spec) { s.EphemeralStorage = resource.MustParse("20Gi") },
			want: []string{"refused: 20Gi of ephemeral storage is above the general-purpose class's maximum of 10Gi"}},
		{name: "kata", set: func(s *sandbox.Spec) { s.RuntimeClassName = "kata" }, want: []string{`refused: RuntimeClass "kata"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := sandbox.NewSpec("x", "ns")
			tc.set(&s)
			got := autopilotProblems(&s)
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %q lacks %q", got[i], w)
				}
			}
		})
	}
}

// doctor says something about Autopilot only on Autopilot, which serves
// the auto.gke.io API group.
func TestCheckAutopilot(t *testing.T) {
	cs := cluster(t, "v1.33.5-gke.1", nil, restrictedNamespace("agents"))
	if got := checkAutopilot(context.Background(), &Env{Clientset: cs, Namespace: "agents"}); len(got) != 0 {
		t.Fatalf("a cluster that is not Autopilot got findings: %+v", got)
	}
	cs.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{{GroupVersion: "auto.gke.io/v1"}}
	wantLine(t, checkAutopilot(context.Background(), &Env{Clientset: cs, Namespace: "agents"}), "", OK, "GKE Autopilot: a default sandbox (1 CPU, 1Gi memory, 2Gi ephemeral storage) keeps its rules")
}
