package cli

import (
	"strings"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A pool that installs through the proxy is told when the proxy is
// another version's; nothing else is.
func TestStaleProxyWarning(t *testing.T) {
	warm := &sandbox.Spec{Namespace: "agents", AllowHosts: []string{"registry.npmjs.org:443"}, WarmInstall: "npm i -g tool"}
	cold := &sandbox.Spec{Namespace: "agents", AllowHosts: []string{"registry.npmjs.org:443"}}
	for _, tc := range []struct {
		name          string
		spec          *sandbox.Spec
		proxy, plugin string
		want          string
	}{
		{"warm, other version", warm, "v0.9.0", "v1.0.0", "was installed by version v0.9.0 of this plugin, not v1.0.0"},
		{"warm, same version", warm, "v1.0.0", "v1.0.0", ""},
		{"warm, version unknown", warm, "", "v1.0.0", ""},
		{"no warm install", cold, "v0.9.0", "v1.0.0", ""},
	} {
		got := staleProxyWarning(tc.spec, tc.proxy, tc.plugin)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) || (got != "" && !strings.HasSuffix(got, "kubectl agentkernel egress install -n agents")) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
