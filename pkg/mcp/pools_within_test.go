package mcp

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// A pool is admitted by what its sandboxes may reach, not by its flags: a
// pool made with --allow-egress 10.0.0.0/8 is no "--network egress" (the
// public internet), and its DNS, node selector and runtime class are the
// server's or narrower. Nothing is claimed when it is refused.
func TestWarmPoolsComparedByReach(t *testing.T) {
	egress := func(s *sandbox.Spec) {
		s.Profile = sandbox.ProfileModerate
		s.Network, s.ReadOnlyRoot = s.Profile.Defaults()
	}
	allow := func(cidr string) []fence.Destination {
		d, err := fence.ParseEgress("--allow-egress", cidr)
		if err != nil {
			t.Fatal(err)
		}
		return []fence.Destination{d}
	}
	dns, err := fence.ParseDNSServer("10.0.0.53")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pool  string
		shape func(*sandbox.Spec)
		want  string // "" admitted
	}{
		{"private", func(s *sandbox.Spec) { egress(s); s.AllowEgress = allow("10.0.0.0/8") }, `it may reach 10.0.0.0/8, beyond what this server's sandboxes may reach (0.0.0.0/0, ::/0)`},
		{"metadata", func(s *sandbox.Spec) { egress(s); s.AllowEgress = allow("169.254.169.254:80") }, `it may reach 169.254.169.254/32:80/TCP`},
		{"dns", func(s *sandbox.Spec) { egress(s); s.DNS = []fence.Destination{dns} }, `it may send DNS to 10.0.0.53/32`},
		{"nodes", func(s *sandbox.Spec) {
			egress(s)
			s.NodeSelector = map[string]string{"kubernetes.io/hostname": "control-plane"}
		}, `its node selector kubernetes.io/hostname=control-plane may place it on nodes this server's (pool=sandboxes) does not`},
		{"runtime", func(s *sandbox.Spec) {
			egress(s)
			s.NodeSelector = map[string]string{"pool": "sandboxes"}
			s.RuntimeClassName = "runc"
		}, `its runtime class is "runc", not this server's none`},
		{"narrower", func(s *sandbox.Spec) {
			egress(s)
			s.AllowEgress = allow("8.8.8.8:443")
			s.NodeSelector = map[string]string{"pool": "sandboxes", "zone": "a"}
			s.Memory.Set(512 << 20)
		}, ""},
	} {
		t.Run(c.pool, func(t *testing.T) {
			cs := fakeCluster()
			poolIn(t, cs, c.pool, 1, c.shape)
			f := start(t, cs, &hostExecutor{}, func(o *Options) {
				o.Pools = WarmPools()
				egress(&o.Spec)
				o.Spec.NodeSelector = map[string]string{"pool": "sandboxes"}
			})
			if c.want == "" {
				ok[SandboxInfo](f, toolCreate, map[string]any{"name": "mine", "pool": c.pool})
			} else {
				before := f.pods()
				f.fails(toolCreate, map[string]any{"name": "mine", "pool": c.pool}, c.want)
				if after := f.pods(); len(after) != len(before) || len(warm(after, c.pool)) != 1 {
					t.Fatalf("a refused claim changed the pods: %d → %d", len(before), len(after))
				}
			}
			if err := f.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An agent that picks its own image keeps the server's --image-pull-policy
// Always: with any other policy the node may run an image someone else
// pulled, without asking the registry whether this sandbox may have it.
func TestAgentImageKeepsPullAlways(t *testing.T) {
	f := start(t, fakeCluster(), &hostExecutor{}, func(o *Options) { o.Spec.ImagePullPolicy = corev1.PullAlways })
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "mine", "image": "registry.example/private:1.0"})
	for _, c := range f.pod("mine").Spec.Containers {
		if c.Name == sandbox.ContainerName && c.ImagePullPolicy != corev1.PullAlways {
			t.Errorf("the agent's image is pulled %q, not Always", c.ImagePullPolicy)
		}
	}
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
}
