// Command csi is a test fixture, not product code: a small CSI driver that the
// realnode guest runs so that the plugin's persistent workspaces, snapshots
// and clones are proven on real storage, with a real dynamic provisioner
// (kubernetes-csi's external-provisioner) and real CSI snapshots
// (external-snapshotter and its snapshot controller).
//
// It is modelled on the behaviour of the kubernetes-csi host-path driver,
// which the module proxy this repository builds from does not serve: a volume
// is a directory below --base-dir, a snapshot is a tar of that directory
// (owners and modes kept), a restore or a clone unpacks or copies into a new
// directory, and NodePublishVolume bind-mounts the volume's directory at the
// kubelet's target path. It also answers the kubelet's plugin registration
// itself (a socket in the kubelet's plugins_registry), so no
// node-driver-registrar is needed.
//
// It runs only inside the qemu guest (test/realnode/guest/init), as root, as
// a plain process: never on the host, since publishing a volume mounts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// version is reported by GetPluginInfo.
const version = "0.1.0"

func main() {
	var (
		name         = flag.String("name", "csi.agentkernel.test", "the driver's name (the CSIDriver object and StorageClass provisioner)")
		endpoint     = flag.String("endpoint", "/var/lib/kubelet/plugins/csi.agentkernel.test/csi.sock", "unix socket the CSI services listen on")
		registration = flag.String("registration-socket", "/var/lib/kubelet/plugins_registry/csi.agentkernel.test-reg.sock", "unix socket the kubelet's plugin watcher finds; empty: do not register")
		nodeID       = flag.String("node-id", "", "this node's name, as NodeGetInfo reports it")
		baseDir      = flag.String("base-dir", "/var/lib/agentkernel-csi", "where volumes and snapshots are kept")
	)
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds | log.LUTC)
	if *nodeID == "" {
		log.Fatal("--node-id is required: the kubelet matches the node's CSINode entry by it")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, *name, *endpoint, *registration, *nodeID, *baseDir); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, name, endpoint, registration, nodeID, baseDir string) error {
	store, err := newStore(baseDir)
	if err != nil {
		return err
	}
	d := &driver{name: name, nodeID: nodeID, store: store, mounter: systemMounter{}}
	csiServer := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(csiServer, d)
	csi.RegisterControllerServer(csiServer, d)
	csi.RegisterNodeServer(csiServer, d)
	servers := []*grpc.Server{csiServer}
	errs := make(chan error, 2)
	if err := serve(csiServer, endpoint, errs); err != nil {
		return err
	}
	log.Printf("driver %s %s serving CSI on %s (node %s, volumes in %s)", name, version, endpoint, nodeID, baseDir)
	// The registration socket last: once the kubelet sees it, it calls the
	// CSI socket at once.
	if registration != "" {
		regServer := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
		registerapi.RegisterRegistrationServer(regServer, &registrar{driverName: name, endpoint: endpoint})
		servers = append(servers, regServer)
		if err := serve(regServer, registration, errs); err != nil {
			return err
		}
		log.Printf("plugin registration on %s", registration)
	}
	select {
	case <-ctx.Done():
		for _, s := range servers {
			s.GracefulStop()
		}
		return nil
	case err := <-errs:
		return err
	}
}

// serve listens on a fresh unix socket (a stale one from an earlier run is
// removed) and serves s on it in the background.
func serve(s *grpc.Server, socket string, errs chan<- error) error {
	if err := os.MkdirAll(filepath.Dir(socket), 0o750); err != nil {
		return err
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the stale socket %s: %w", socket, err)
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	go func() { errs <- s.Serve(l) }()
	return nil
}

// logCalls logs every call and its outcome: the guest's CSI log is the only
// way to see what the sidecars and the kubelet asked for.
func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		log.Printf("%s %v: error: %v", info.FullMethod, req, err)
	} else {
		log.Printf("%s %v: ok", info.FullMethod, req)
	}
	return resp, err
}
