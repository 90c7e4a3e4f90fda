package main

import (
	"context"
	"errors"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// driver serves the CSI Identity, Controller and Node services. The
// controller side works on the store; the node side bind-mounts a volume's
// directory at the kubelet's target path.
type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	name, nodeID string
	store        *store
	mounter      mounter
}

// defaultCapacity is what a volume reports when the claim asks for no size.
// Nothing enforces a volume's capacity: like the host-path driver's
// directories, volumes share the guest's disk.
const defaultCapacity = 1 << 30

// --- Identity ---

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.name, VendorVersion: version}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}},
	}}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// --- Controller ---

var controllerCapabilities = []csi.ControllerServiceCapability_RPC_Type{
	csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
	csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
	csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
}

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	resp := &csi.ControllerGetCapabilitiesResponse{}
	for _, c := range controllerCapabilities {
		resp.Capabilities = append(resp.Capabilities, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
		})
	}
	return resp, nil
}

func (d *driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "CreateVolume: a name is required")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	m := volumeMeta{Name: req.GetName(), CapacityBytes: req.GetCapacityRange().GetRequiredBytes()}
	if m.CapacityBytes == 0 {
		m.CapacityBytes = req.GetCapacityRange().GetLimitBytes()
	}
	if m.CapacityBytes == 0 {
		m.CapacityBytes = defaultCapacity
	}
	src := req.GetVolumeContentSource()
	switch {
	case src == nil:
	case src.GetSnapshot() != nil:
		m.SourceSnapshot = src.GetSnapshot().GetSnapshotId()
	case src.GetVolume() != nil:
		m.SourceVolume = src.GetVolume().GetVolumeId()
	default:
		return nil, status.Error(codes.InvalidArgument, "CreateVolume: the content source is neither a snapshot nor a volume")
	}
	if m.SourceSnapshot != "" && !validID(m.SourceSnapshot) || m.SourceVolume != "" && !validID(m.SourceVolume) {
		return nil, status.Errorf(codes.NotFound, "CreateVolume %s: no such content source %+v", m.Name, src)
	}
	id, err := d.store.createVolume(m)
	if err != nil {
		return nil, grpcError("CreateVolume", err)
	}
	// The provisioner checks that a volume made from a source says so.
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      id,
		CapacityBytes: m.CapacityBytes,
		ContentSource: src,
	}}, nil
}

func (d *driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "DeleteVolume: a volume ID is required")
	}
	if err := d.store.deleteVolume(req.GetVolumeId()); err != nil {
		return nil, grpcError("DeleteVolume", err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if _, err := d.store.volume(req.GetVolumeId()); err != nil {
		return nil, grpcError("ValidateVolumeCapabilities", err)
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeCapabilities: req.GetVolumeCapabilities(),
	}}, nil
}

func (d *driver) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" || req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "CreateSnapshot: a name and a source volume ID are required")
	}
	id, m, err := d.store.createSnapshot(req.GetName(), req.GetSourceVolumeId())
	if err != nil {
		return nil, grpcError("CreateSnapshot", err)
	}
	// The tar is complete when CreateSnapshot returns: ready at once.
	return &csi.CreateSnapshotResponse{Snapshot: &csi.Snapshot{
		SnapshotId:     id,
		SourceVolumeId: m.SourceVolume,
		SizeBytes:      m.SizeBytes,
		CreationTime:   timestamppb.New(timeOf(m.CreatedUnixNano)),
		ReadyToUse:     true,
	}}, nil
}

func (d *driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "DeleteSnapshot: a snapshot ID is required")
	}
	if err := d.store.deleteSnapshot(req.GetSnapshotId()); err != nil {
		return nil, grpcError("DeleteSnapshot", err)
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// checkCapabilities accepts filesystem volumes only: a volume is a
// directory, there is no block device to hand out.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	for _, c := range caps {
		if c.GetBlock() != nil {
			return status.Error(codes.InvalidArgument, "block volumes are not supported: a volume is a directory (use volumeMode: Filesystem)")
		}
		if c.GetMount() == nil {
			return status.Error(codes.InvalidArgument, "a volume capability must ask for a filesystem (mount) volume")
		}
	}
	return nil
}

// grpcError gives the sidecars the code the CSI spec asks for, so they
// retry or give up as they should.
func grpcError(call string, err error) error {
	switch {
	case errors.Is(err, errNotFound):
		return status.Errorf(codes.NotFound, "%s: %v", call, err)
	case errors.Is(err, errConflict):
		return status.Errorf(codes.AlreadyExists, "%s: %v", call, err)
	default:
		return status.Errorf(codes.Internal, "%s: %v", call, err)
	}
}

// --- Node ---

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.nodeID}, nil
}

// NodeGetCapabilities: none. Without STAGE_UNSTAGE_VOLUME the kubelet
// publishes straight to the Pod's target path.
func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

func (d *driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	if id == "" || target == "" || req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "NodePublishVolume: a volume ID, a target path and a volume capability are required")
	}
	if err := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	if _, err := d.store.volume(id); err != nil {
		return nil, grpcError("NodePublishVolume", err)
	}
	if err := d.mounter.bind(d.store.volumeDir(id), target, req.GetReadonly()); err != nil {
		return nil, status.Errorf(codes.Internal, "NodePublishVolume %s at %s: %v", id, target, err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" || req.GetTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "NodeUnpublishVolume: a volume ID and a target path are required")
	}
	if err := d.mounter.unbind(req.GetTargetPath()); err != nil {
		return nil, status.Errorf(codes.Internal, "NodeUnpublishVolume %s at %s: %v", req.GetVolumeId(), req.GetTargetPath(), err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}
