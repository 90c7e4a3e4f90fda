package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// These tests drive the driver through its real gRPC services on unix
// sockets in a temporary directory, with real tar, as the sidecars and the
// kubelet do in the guest. Only mounting is replaced: nothing may be mounted
// on the host.

// fakeMounter records binds instead of mounting.
type fakeMounter struct {
	mu      sync.Mutex
	mounted map[string]string // target -> source
}

func (f *fakeMounter) bind(source, target string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mounted[target] = source
	return nil
}

func (f *fakeMounter) unbind(target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mounted, target)
	return nil
}

type harness struct {
	base     string
	mounter  *fakeMounter
	id       csi.IdentityClient
	ctrl     csi.ControllerClient
	node     csi.NodeClient
	register registerapi.RegistrationClient
}

func start(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	// unix socket paths are limited to ~108 bytes; t.TempDir can be long.
	sockDir, err := os.MkdirTemp("", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	endpoint := filepath.Join(sockDir, "csi.sock")
	registration := filepath.Join(sockDir, "reg.sock")
	base := filepath.Join(dir, "base")
	store, err := newStore(base)
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeMounter{mounted: map[string]string{}}
	d := &driver{name: "csi.agentkernel.test", nodeID: "realnode", store: store, mounter: fm}
	s := grpc.NewServer()
	csi.RegisterIdentityServer(s, d)
	csi.RegisterControllerServer(s, d)
	csi.RegisterNodeServer(s, d)
	rs := grpc.NewServer()
	registerapi.RegisterRegistrationServer(rs, &registrar{driverName: d.name, endpoint: endpoint})
	errs := make(chan error, 2)
	if err := serve(s, endpoint, errs); err != nil {
		t.Fatal(err)
	}
	if err := serve(rs, registration, errs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(); rs.Stop() })
	dial := func(sock string) *grpc.ClientConn {
		c, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	c := dial(endpoint)
	return &harness{
		base: base, mounter: fm,
		id: csi.NewIdentityClient(c), ctrl: csi.NewControllerClient(c), node: csi.NewNodeClient(c),
		register: registerapi.NewRegistrationClient(dial(registration)),
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

var mountCap = []*csi.VolumeCapability{{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}}

func createVolume(t *testing.T, h *harness, name string, src *csi.VolumeContentSource) *csi.Volume {
	t.Helper()
	resp, err := h.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{
		Name: name, VolumeCapabilities: mountCap, VolumeContentSource: src,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 2 << 20},
	})
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", name, err)
	}
	return resp.Volume
}

func wantCode(t *testing.T, err error, code codes.Code, mention string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %s", err, code)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("error %q does not mention %q", err, mention)
	}
}

func TestRegistrationNamesTheDriverAndItsSocket(t *testing.T) {
	h := start(t)
	info, err := h.register.GetInfo(ctx(t), &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != registerapi.CSIPlugin || info.Name != "csi.agentkernel.test" || !strings.HasSuffix(info.Endpoint, "/csi.sock") ||
		len(info.SupportedVersions) == 0 {
		t.Fatalf("GetInfo = %+v", info)
	}
	if _, err := h.register.NotifyRegistrationStatus(ctx(t), &registerapi.RegistrationStatus{PluginRegistered: false, Error: "x"}); err != nil {
		t.Fatal(err)
	}
	pi, err := h.id.GetPluginInfo(ctx(t), &csi.GetPluginInfoRequest{})
	if err != nil || pi.Name != info.Name {
		t.Fatalf("GetPluginInfo = %v, %v; want the registered name %s", pi, err, info.Name)
	}
	ni, err := h.node.NodeGetInfo(ctx(t), &csi.NodeGetInfoRequest{})
	if err != nil || ni.NodeId != "realnode" {
		t.Fatalf("NodeGetInfo = %v, %v", ni, err)
	}
}

func TestControllerAdvertisesVolumesSnapshotsAndClones(t *testing.T) {
	h := start(t)
	resp, err := h.ctrl.ControllerGetCapabilities(ctx(t), &csi.ControllerGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[csi.ControllerServiceCapability_RPC_Type]bool{}
	for _, c := range resp.Capabilities {
		got[c.GetRpc().GetType()] = true
	}
	for _, want := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
	} {
		if !got[want] {
			t.Errorf("capability %s missing from %v", want, resp.Capabilities)
		}
	}
}

// A snapshot keeps the tree as it was (content, modes, owners when run as
// root); a restore and a clone each get their own copy.
func TestSnapshotRestoreAndCloneCopyTheTree(t *testing.T) {
	h := start(t)
	src := createVolume(t, h, "pvc-src", nil)
	if src.CapacityBytes != 2<<20 {
		t.Fatalf("capacity %d, want the requested %d", src.CapacityBytes, 2<<20)
	}
	dir := filepath.Join(h.base, "volumes", src.VolumeId)
	if err := os.MkdirAll(filepath.Join(dir, "workspace"), 0o770); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "workspace", "notes.txt")
	if err := os.WriteFile(file, []byte("before"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "workspace"), 0o770|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	if root {
		if err := os.Chown(file, 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}

	snap, err := h.ctrl.CreateSnapshot(ctx(t), &csi.CreateSnapshotRequest{Name: "snapshot-1", SourceVolumeId: src.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Snapshot.ReadyToUse || snap.Snapshot.SizeBytes != src.CapacityBytes || snap.Snapshot.SourceVolumeId != src.VolumeId ||
		snap.Snapshot.CreationTime == nil {
		t.Fatalf("snapshot %+v: want ready, sized like its volume, of %s, with a creation time", snap.Snapshot, src.VolumeId)
	}
	// Asked again (a sidecar retry): the same snapshot.
	again, err := h.ctrl.CreateSnapshot(ctx(t), &csi.CreateSnapshotRequest{Name: "snapshot-1", SourceVolumeId: src.VolumeId})
	if err != nil || again.Snapshot.SnapshotId != snap.Snapshot.SnapshotId ||
		!again.Snapshot.CreationTime.AsTime().Equal(snap.Snapshot.CreationTime.AsTime()) {
		t.Fatalf("repeated CreateSnapshot = %v, %v; want the first one", again, err)
	}
	// The source changes after the snapshot.
	if err := os.WriteFile(file, []byte("after"), 0o640); err != nil {
		t.Fatal(err)
	}

	fromSnap := &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.Snapshot.SnapshotId}}}
	restored := createVolume(t, h, "pvc-restored", fromSnap)
	if restored.ContentSource.GetSnapshot().GetSnapshotId() != snap.Snapshot.SnapshotId {
		t.Fatalf("restored volume's content source %v: the provisioner needs it echoed", restored.ContentSource)
	}
	fromVol := &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
		Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: src.VolumeId}}}
	clone := createVolume(t, h, "pvc-clone", fromVol)

	check := func(vol *csi.Volume, want string) {
		t.Helper()
		d := filepath.Join(h.base, "volumes", vol.VolumeId)
		b, err := os.ReadFile(filepath.Join(d, "workspace", "notes.txt"))
		if err != nil || string(b) != want {
			t.Fatalf("%s: notes.txt = %q, %v; want %q", vol.VolumeId, b, err, want)
		}
		fi, err := os.Stat(filepath.Join(d, "workspace", "notes.txt"))
		if err != nil || fi.Mode().Perm() != 0o640 {
			t.Fatalf("%s: notes.txt mode %v, %v; want 0640", vol.VolumeId, fi.Mode(), err)
		}
		di, err := os.Stat(filepath.Join(d, "workspace"))
		if err != nil || di.Mode()&os.ModeSetgid == 0 || di.Mode().Perm() != 0o770 {
			t.Fatalf("%s: workspace mode %v, %v; want setgid 0770", vol.VolumeId, di.Mode(), err)
		}
		if root {
			if uid, gid := owner(fi); uid != 1234 || gid != 5678 {
				t.Fatalf("%s: notes.txt owned by %d:%d, want 1234:5678", vol.VolumeId, uid, gid)
			}
		}
	}
	check(restored, "before")
	check(clone, "after")

	// Deleting removes what the driver made; deleting again is done.
	for _, v := range []*csi.Volume{src, restored, clone} {
		for range 2 {
			if _, err := h.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 2 {
		if _, err := h.ctrl.DeleteSnapshot(ctx(t), &csi.DeleteSnapshotRequest{SnapshotId: snap.Snapshot.SnapshotId}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"volumes", "snapshots"} {
		left, err := os.ReadDir(filepath.Join(h.base, sub))
		if err != nil || len(left) != 0 {
			t.Fatalf("%s after every delete: %v, %v; want nothing", sub, left, err)
		}
	}
}

func TestCreateVolumeIsIdempotentAndRefusesAConflict(t *testing.T) {
	h := start(t)
	v := createVolume(t, h, "pvc-a", nil)
	if again := createVolume(t, h, "pvc-a", nil); again.VolumeId != v.VolumeId {
		t.Fatalf("repeated CreateVolume made %s, first %s", again.VolumeId, v.VolumeId)
	}
	_, err := h.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{
		Name: "pvc-a", VolumeCapabilities: mountCap, CapacityRange: &csi.CapacityRange{RequiredBytes: 5 << 20},
	})
	wantCode(t, err, codes.AlreadyExists, "pvc-a")
}

// Every request a sidecar or the kubelet can get wrong is refused with the
// code the CSI spec names, and leaves nothing behind.
func TestBadRequestsAreRefusedAndLeaveNothing(t *testing.T) {
	h := start(t)
	v := createVolume(t, h, "pvc-ok", nil)
	block := []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}}}
	snapSrc := func(id string) *csi.VolumeContentSource {
		return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
	}
	volSrc := func(id string) *csi.VolumeContentSource {
		return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: id}}}
	}
	cases := []struct {
		name    string
		call    func() error
		code    codes.Code
		mention string
	}{
		{"no name", func() error {
			_, err := h.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{VolumeCapabilities: mountCap})
			return err
		}, codes.InvalidArgument, "name is required"},
		{"no capabilities", func() error {
			_, err := h.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{Name: "pvc-x"})
			return err
		}, codes.InvalidArgument, "capabilities are required"},
		{"block", func() error {
			_, err := h.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{Name: "pvc-x", VolumeCapabilities: block})
			return err
		}, codes.InvalidArgument, "volumeMode: Filesystem"},
		{"missing snapshot", func() error {
			_, err := h.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{Name: "pvc-x", VolumeCapabilities: mountCap, VolumeContentSource: snapSrc("snap-nope")})
			return err
		}, codes.NotFound, "snap-nope"},
		{"missing clone source", func() error {
			_, err := h.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{Name: "pvc-x", VolumeCapabilities: mountCap, VolumeContentSource: volSrc("vol-nope")})
			return err
		}, codes.NotFound, "vol-nope"},
		{"clone source outside the store", func() error {
			_, err := h.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{Name: "pvc-x", VolumeCapabilities: mountCap, VolumeContentSource: volSrc("../volumes")})
			return err
		}, codes.NotFound, "no such content source"},
		{"snapshot of a missing volume", func() error {
			_, err := h.ctrl.CreateSnapshot(ctx(t), &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: "vol-nope"})
			return err
		}, codes.NotFound, "vol-nope"},
		{"snapshot without a source", func() error {
			_, err := h.ctrl.CreateSnapshot(ctx(t), &csi.CreateSnapshotRequest{Name: "s"})
			return err
		}, codes.InvalidArgument, "source volume ID"},
		{"publish a missing volume", func() error {
			_, err := h.node.NodePublishVolume(ctx(t), &csi.NodePublishVolumeRequest{VolumeId: "vol-nope", TargetPath: "/t", VolumeCapability: mountCap[0]})
			return err
		}, codes.NotFound, "vol-nope"},
		{"publish without a target", func() error {
			_, err := h.node.NodePublishVolume(ctx(t), &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, VolumeCapability: mountCap[0]})
			return err
		}, codes.InvalidArgument, "target path"},
		{"delete without an ID", func() error {
			_, err := h.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{})
			return err
		}, codes.InvalidArgument, "volume ID is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantCode(t, c.call(), c.code, c.mention) })
	}
	// A snapshot name reused for another volume is a conflict.
	other := createVolume(t, h, "pvc-other", nil)
	if _, err := h.ctrl.CreateSnapshot(ctx(t), &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: v.VolumeId}); err != nil {
		t.Fatal(err)
	}
	_, err := h.ctrl.CreateSnapshot(ctx(t), &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: other.VolumeId})
	wantCode(t, err, codes.AlreadyExists, other.VolumeId)

	vols, _ := os.ReadDir(filepath.Join(h.base, "volumes"))
	snaps, _ := os.ReadDir(filepath.Join(h.base, "snapshots"))
	if len(vols) != 4 || len(snaps) != 2 { // two volumes (tree + meta), one snapshot (tar + meta)
		t.Fatalf("left behind: volumes %v, snapshots %v", names(vols), names(snaps))
	}
}

func TestPublishBindsTheVolumeDirectory(t *testing.T) {
	h := start(t)
	v := createVolume(t, h, "pvc-p", nil)
	target := "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/pvc-p/mount"
	if _, err := h.node.NodePublishVolume(ctx(t), &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target, VolumeCapability: mountCap[0]}); err != nil {
		t.Fatal(err)
	}
	if got, want := h.mounter.mounted[target], filepath.Join(h.base, "volumes", v.VolumeId); got != want {
		t.Fatalf("bound %q at the target, want %q", got, want)
	}
	if _, err := h.node.NodeUnpublishVolume(ctx(t), &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if len(h.mounter.mounted) != 0 {
		t.Fatalf("still mounted after unpublish: %v", h.mounter.mounted)
	}
}

func TestMountPointsReadsMountinfo(t *testing.T) {
	info := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
97 22 254:0 /var/lib/agentkernel-csi/volumes/vol-1 /var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/pvc-1/mount rw,relatime shared:1 - ext4 /dev/vda rw
98 22 0:5 / /mnt/with\040space rw - tmpfs tmpfs rw
`
	got, err := mountPoints(strings.NewReader(info))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/", "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/pvc-1/mount", "/mnt/with space"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("mountPoints = %q, want %q", got, want)
	}
	if _, err := mountPoints(strings.NewReader("broken line\n")); err == nil {
		t.Fatal("a line of two fields parsed without an error")
	}
	// A tail that is not an octal escape stays as it is.
	if got := unescapeOctal(`a\04`); got != `a\04` {
		t.Fatalf("unescapeOctal(a\\04) = %q", got)
	}
	if ok, err := isMountPoint("/definitely/not/a/mount/point"); ok || err != nil {
		t.Fatalf("isMountPoint of a made-up path = %v, %v", ok, err)
	}
}

func TestTarFailureIsReportedAndLeavesNoVolume(t *testing.T) {
	h := start(t)
	// A snapshot whose tar is gone: the restore must fail with tar's words
	// and leave no half-made volume.
	v := createVolume(t, h, "pvc-t", nil)
	snap, err := h.ctrl.CreateSnapshot(ctx(t), &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: v.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(h.base, "snapshots", snap.Snapshot.SnapshotId+".tar")); err != nil {
		t.Fatal(err)
	}
	_, err = h.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{Name: "pvc-r", VolumeCapabilities: mountCap,
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.Snapshot.SnapshotId}}}})
	wantCode(t, err, codes.Internal, "tar")
	if _, statErr := os.Stat(filepath.Join(h.base, "volumes", idFor("vol-", "pvc-r"))); !errors.Is(statErr, os.ErrNotExist) {
		t.Fatalf("a failed restore left its volume directory: %v", statErr)
	}
}

func names(es []os.DirEntry) []string {
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}
