//go:build tools

// Package components pins the Kubernetes control-plane binaries the e2e
// harness builds. Nothing here is imported by the plugin: this module exists
// so the plugin's own go.mod never depends on k8s.io/kubernetes.
package components

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
