package cmd

import (
	"k8s.io/cli-runtime/pkg/genericclioptions"
	restclient "k8s.io/client-go/rest"

	"github.com/agentkernel/kubectl-agentkernel/pkg/clientrate"
)

// newConfigFlags returns the kubeconfig flags of the whole command tree,
// whose REST configs carry clientrate.QPS/Burst.
func newConfigFlags() *genericclioptions.ConfigFlags {
	flags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag()
	return flags.WithWrapConfigFn(withClientRate)
}

// withClientRate sets the plugin's rate limit on a config that has none of its
// own (a kubeconfig cannot carry one; a caller of the library might).
func withClientRate(c *restclient.Config) *restclient.Config {
	if c.QPS == 0 && c.Burst == 0 && c.RateLimiter == nil {
		c.QPS, c.Burst = clientrate.QPS, clientrate.Burst
	}
	return c
}
