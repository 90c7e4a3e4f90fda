package sandbox

import "fmt"

// The Spec's side of the network fence: what its NetworkPolicy selects
// and allows, checked against its network mode.

// validateEgress checks the egress fields against the network mode.
func (s *Spec) validateEgress() error {
	if s.Network != NetworkEgress {
		if len(s.AllowEgress) > 0 {
			return fmt.Errorf("--allow-egress needs --network egress (the network is %q)", s.Network)
		}
		if len(s.DNS) > 0 {
			return fmt.Errorf("--dns only matters with --network egress (the network is %q)", s.Network)
		}
	}
	for _, d := range append(append([]Destination(nil), s.AllowEgress...), s.DNS...) {
		if err := d.Validate(); err != nil {
			return err
		}
	}
	return nil
}
