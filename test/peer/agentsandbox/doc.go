// Package agentsandbox runs kubernetes-sigs/agent-sandbox — the peer the
// bench measures beside kubectl agentkernel (issue #27) — on the local
// control plane of test/cluster: its controller built from the Go module
// proxy at Version (the module in ./module, cached like the control plane),
// its CRDs, ServiceAccount and RBAC applied from the files it ships in its
// module, and the controller run as a host process with a kubeconfig that
// carries its ServiceAccount's token (never in a Pod; only loopback).
//
// What it installs is what agent-sandbox's own k8s/ install applies
// (controller.yaml, rbac.generated.yaml, extensions.yaml,
// extensions-rbac.generated.yaml, the four CRDs) less the controller's
// Deployment and metrics Service, which the host process replaces. Nothing
// is adjusted: the CRDs load on v1.37.2 as shipped.
package agentsandbox
