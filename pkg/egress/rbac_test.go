package egress

import (
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
)

// RBAC lets a Role grant only what its maker holds: whoever has the
// plugin's Role and the egress admin's may make the proxy's Role, every
// verb of it, on the same names.
func TestTheEgressAdminHoldsWhatTheProxysRoleGrants(t *testing.T) {
	if rbac.EgressKeyTableName != keys.SecretName || rbac.EgressUsageName != keys.UsageConfigMapName {
		t.Fatalf("rbac names %q and %q, the proxy reads %q and writes %q", rbac.EgressKeyTableName, rbac.EgressUsageName, keys.SecretName, keys.UsageConfigMapName)
	}
	held := append(rbac.Of(rbac.Namespace), rbac.EgressAdmin...)
	holds := func(verb, group, resource, name string) bool {
		for _, p := range held {
			if p.Verb != verb || p.Group != group || p.Resource != resource {
				continue
			}
			if len(p.ResourceNames) == 0 {
				return true
			}
			for _, n := range p.ResourceNames {
				if n == name && name != "" {
					return true
				}
			}
		}
		return false
	}
	for _, r := range ProxyRules() {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					for _, n := range names {
						if !holds(v, g, res, n) {
							t.Errorf("the proxy's Role grants %s %s %q, which neither the plugin's Role nor the egress admin's holds", v, res, n)
						}
					}
				}
			}
		}
	}
}
