package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// addEgressFlags registers the flags that say where an egress sandbox may
// connect.
func (f *SandboxFlags) addEgressFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.AllowEgress, "allow-egress", f.AllowEgress,
		"Allow egress only to CIDR[:PORT[/PROTO]] (repeatable; implies --network egress): e.g. 203.0.113.0/24:443 or [2001:db8::1]:443. "+
			"Private, link-local, loopback and metadata addresses stay blocked unless the CIDR lies inside them")
	fl.StringArrayVar(&f.DNS, "dns", f.DNS,
		"DNS server an egress sandbox may query, CIDR[:PORT] over UDP and TCP (repeatable; default: the cluster's, as found from its kube-dns Service), e.g. 169.254.20.10 for NodeLocal DNSCache")
}

// egressSpec puts --allow-egress and --dns into s. An allow-list makes the
// network egress unless --network says otherwise, which is then an error;
// Spec.Validate refuses --dns on a network that is not egress.
func (f *SandboxFlags) egressSpec(s *sandbox.Spec) error {
	if len(f.AllowEgress) > 0 && len(f.AllowHosts) > 0 {
		// Two different fences: addresses opened in the NetworkPolicy, or
		// no network but the namespace's egress proxy, which checks names.
		return fmt.Errorf("--allow-egress and --allow-host cannot be combined: --allow-host sends everything through the namespace's egress proxy, which admits host names (and IPs or CIDRs: --allow-host 203.0.113.0/24:443); use one of them")
	}
	for _, a := range f.AllowEgress {
		d, err := fence.ParseEgress("--allow-egress", a)
		if err != nil {
			return err
		}
		s.AllowEgress = append(s.AllowEgress, d)
	}
	for _, a := range f.DNS {
		d, err := fence.ParseDNSServer(a)
		if err != nil {
			return err
		}
		s.DNS = append(s.DNS, d)
	}
	// An allow-list narrows egress, so asking for one asks for egress. --dns
	// alone does not: it must never turn a sandbox without network into one
	// that reaches the internet.
	if len(s.AllowEgress) > 0 {
		if f.Network != "" && s.Network != sandbox.NetworkEgress {
			return fmt.Errorf("--allow-egress is a list of egress destinations; it cannot go with --network %s", f.Network)
		}
		s.Network = sandbox.NetworkEgress
	}
	return nil
}
