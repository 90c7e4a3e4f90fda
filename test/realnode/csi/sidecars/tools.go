//go:build tools

// Package sidecars pins the kubernetes-csi sidecars that the realnode guest
// runs beside the test CSI driver (../): the external provisioner, the
// external snapshotter and the snapshot controller. They are built on the
// host (go build only, build/build.sh) and run only inside the qemu guest.
// This is a module of its own so that neither the plugin's go.mod nor the
// repository's `go build ./...` ever depends on them.
package sidecars

import (
	_ "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter"
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller"
)
