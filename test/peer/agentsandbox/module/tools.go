//go:build tools

// Package module pins kubernetes-sigs/agent-sandbox, the peer the bench
// measures beside kubectl agentkernel (issue #27), at the version the Go
// module proxy serves. Nothing here is imported by the plugin: this module
// exists so the plugin's own go.mod never depends on agent-sandbox or on
// its controller-runtime. The controller is built from this module with
// agent-sandbox's own dependency pins (k8s.io/* v0.36.4): no replaces.
package module

import (
	_ "sigs.k8s.io/agent-sandbox/cmd/agent-sandbox-controller"
)
