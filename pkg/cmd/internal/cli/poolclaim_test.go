package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
)

// Every sandbox flag is either one a claim insists on, one a claim brings,
// or refused with --pool: none is silently ignored.
func TestClaimMatchSortsEverySandboxFlag(t *testing.T) {
	probe := &cobra.Command{}
	NewSandboxFlags().AddFlags(probe)
	var names []string
	probe.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	for _, name := range names {
		cmd := &cobra.Command{}
		NewSandboxFlags().AddFlags(cmd)
		value := map[string]string{"read-only": "true", "node-selector": "a=b", "env": "A=b", "label": "a=b", "port": "80",
			"uid": "1001", "ttl": "1h", "idle-timeout": "1h", "secret-env": "K", "accept-admission-changes": "true", "inject-keys": "true"}[name]
		if value == "" {
			value = "x"
		}
		if err := cmd.Flags().Set(name, value); err != nil {
			t.Fatalf("--%s %s: %v", name, value, err)
		}
		match, err := ClaimMatch(cmd)
		switch {
		case slices.Contains(pool.ClaimFields, fieldOfFlag(name)):
			if err != nil || !slices.Equal(match, []string{fieldOfFlag(name)}) {
				t.Errorf("--%s: match %v, err %v; want it insisted on", name, match, err)
			}
		case slices.Contains(pool.PerClaimFields, fieldOfFlag(name)), slices.Contains(claimNeutral, name):
			if err != nil || len(match) != 0 {
				t.Errorf("--%s: match %v, err %v; want it brought by the claim", name, match, err)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), "--"+name+" cannot be used with --pool") {
				t.Errorf("--%s is neither a pool's nor a claim's, and not refused: %v", name, err)
			}
		}
	}
}
