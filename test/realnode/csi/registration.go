package main

import (
	"context"
	"log"

	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// registrar answers the kubelet's plugin watcher, which is what
// node-driver-registrar does for other drivers: it names the driver and its
// CSI socket, and the kubelet then calls NodeGetInfo there and adds the driver
// to the node's CSINode object.
type registrar struct {
	registerapi.UnimplementedRegistrationServer
	driverName string
	endpoint   string
}

// supportedVersions are the CSI versions the kubelet may speak with us.
var supportedVersions = []string{"1.0.0"}

func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.driverName,
		Endpoint:          r.endpoint,
		SupportedVersions: supportedVersions,
	}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		// The kubelet refused us; nothing here can fix that, but the log
		// says why for whoever reads the guest's CSI log.
		log.Printf("the kubelet did not register driver %s: %s", r.driverName, s.Error)
	} else {
		log.Printf("the kubelet registered driver %s", r.driverName)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
