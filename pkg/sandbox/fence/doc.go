// Package fence is the network fence of a sandbox, as data: the
// destinations an egress sandbox may reach (Destination, Port and their
// parsing), the address ranges no fenced sandbox reaches, the NetworkPolicy
// egress rules that render them, where the cluster's DNS answers, and the
// names and grants of the namespace's egress proxy that --allow-host routes
// through. It imports no package of ours but the proxy's host rules:
// package sandbox builds a Spec's NetworkPolicy from these pieces.
package fence
