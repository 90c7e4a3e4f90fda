// Package realnode boots a real Kubernetes node — kubelet, containerd, runc,
// bridge CNI and optionally the kube-network-policies agent — in a qemu guest
// and joins it to a localcluster control plane, so e2e tests can check what
// only a real kubelet and runtime enforce.
//
// Everything privileged happens inside the guest. On the host there is one
// qemu process (TCG) with user-mode networking in restricted mode: the guest
// can reach nothing but the apiserver (a guestfwd at 10.0.2.2, an address the
// apiserver's certificate already names), and the apiserver reaches the
// kubelet through a hostfwd on 127.0.0.1.
package realnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// The guest's view of the slirp network. The host (slirp's gateway) is moved
// to 10.0.2.1 so that 10.0.2.2 — the address in the apiserver's serving
// certificate — is free for the guestfwd to the apiserver.
const (
	guestIP   = "10.0.2.15"
	gatewayIP = "10.0.2.1"
	apiHostIP = "10.0.2.2"
)

// Options for Boot. The zero value works.
type Options struct {
	// Artifacts to boot; nil runs Build.
	Artifacts *Artifacts
	// Dir keeps the guest's logs and throwaway disk; "" means
	// <cluster dir>/realnode-<name>.
	Dir string
	// NodeName defaults to "realnode".
	NodeName string
	// CPUs and MemoryMiB of the guest; 2 and 3072 by default (a default
	// sandbox asks for 1 CPU and 1Gi).
	CPUs, MemoryMiB int
	// NetworkPolicy starts kube-network-policies in the guest, so that
	// NetworkPolicy objects are enforced (the bridge CNI enforces none).
	NetworkPolicy bool
	// CSI starts the test CSI driver and kubernetes-csi's provisioner,
	// snapshotter and snapshot controller in the guest (see csi.go), after
	// installing the snapshot CRDs.
	CSI bool
	// ReadyTimeout bounds boot to node Ready; 12 minutes by default (TCG on
	// 2 busy cores varies a lot, and the guest imports the agents' image,
	// 3.5 min alone, before it is ready).
	ReadyTimeout time.Duration
	// Accel is qemu's -accel value; "tcg" by default (there is no KVM on
	// the machines this runs on). AGENTKERNEL_REALNODE_ACCEL overrides it.
	Accel string
	// KubeletVerbosity is the kubelet's --v (1 by default).
	KubeletVerbosity int
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Timings of one boot, measured from qemu's start.
type Timings struct {
	// GuestInit is the guest's uptime when its init reported "ready"
	// (containerd, kubelet and agent started, images imported).
	GuestInit time.Duration
	// InitReady is when the host saw that line.
	InitReady time.Duration
	// NodeReady is when the Node turned Ready.
	NodeReady time.Duration
}

// Node is a running guest that joined the cluster.
type Node struct {
	Name        string
	Dir         string
	KubeletPort int
	// Serial-port logs the guest writes (files in Dir).
	ConsoleLog, KubeletLog, ContainerdLog, AgentLog string
	// CSILog is the CSI driver's and its sidecars' (Options.CSI only).
	CSILog    string
	Artifacts *Artifacts
	Timings   Timings

	client  kubernetes.Interface
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	secrets []string
	once    sync.Once
	log     io.Writer
}

// Boot starts a guest and returns once its Node is Ready.
func Boot(ctx context.Context, c *localcluster.Cluster, opts Options) (_ *Node, err error) {
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	if err := opts.complete(ctx, c, log); err != nil {
		return nil, err
	}

	server, err := url.Parse(c.Server)
	if err != nil || server.Port() == "" {
		return nil, fmt.Errorf("cluster server %q has no port", c.Server)
	}
	apiPort := server.Port()
	ports, err := localcluster.FreePorts(1)
	if err != nil {
		return nil, err
	}
	kubeletPort := ports[0]
	restConfig, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load the admin kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}

	n := &Node{
		Name:          opts.NodeName,
		Dir:           opts.Dir,
		KubeletPort:   kubeletPort,
		ConsoleLog:    filepath.Join(opts.Dir, "console.log"),
		KubeletLog:    filepath.Join(opts.Dir, "kubelet.log"),
		ContainerdLog: filepath.Join(opts.Dir, "containerd.log"),
		AgentLog:      filepath.Join(opts.Dir, "network-policy-agent.log"),
		CSILog:        filepath.Join(opts.Dir, "csi.log"),
		Artifacts:     opts.Artifacts,
		client:        client,
		exited:        make(chan struct{}),
		log:           log,
	}
	defer func() {
		if err != nil {
			_ = n.Shutdown()
		}
	}()

	ca, err := localcluster.LoadAuthority(c.PKIDir)
	if err != nil {
		return nil, err
	}
	files, err := n.guestFiles(ctx, ca, apiPort, opts)
	if err != nil {
		return nil, err
	}
	if opts.CSI {
		if err := installSnapshotCRDs(ctx, c.AdminKubeconfig, opts.Artifacts, log); err != nil {
			return nil, err
		}
	}
	// The Node exists before the kubelet starts: with --cloud-provider=external
	// the kubelet then keeps its addresses, and InternalIP 127.0.0.1 is where
	// the apiserver reaches the kubelet (a hostfwd into the guest). The kubelet
	// itself refuses a loopback --node-ip.
	if err := n.createNode(ctx); err != nil {
		return nil, err
	}

	configTar := filepath.Join(opts.Dir, "config.tar")
	if err := writeTar(configTar, files); err != nil {
		return nil, err
	}
	overlay := filepath.Join(opts.Dir, "disk.qcow2")
	n.secrets = append(n.secrets, configTar, overlay)
	_ = os.Remove(overlay)
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
		"-b", opts.Artifacts.Disk, overlay).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("qemu-img create: %v: %s", err, out)
	}

	for _, f := range []string{n.ConsoleLog, n.KubeletLog, n.ContainerdLog, n.AgentLog, n.CSILog} {
		_ = os.Remove(f)
	}
	n.cmd = exec.Command("qemu-system-x86_64", n.qemuArgs(opts, apiPort, overlay, configTar)...)
	qemuErr := &bytes.Buffer{}
	n.cmd.Stdout = qemuErr
	n.cmd.Stderr = qemuErr
	// qemu must not outlive a test binary that is killed.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	fmt.Fprintf(log, "realnode: booting %s (qemu -accel %s, %d CPUs, %d MiB); logs in %s\n",
		opts.NodeName, opts.Accel, opts.CPUs, opts.MemoryMiB, opts.Dir)
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		if s := strings.TrimSpace(qemuErr.String()); s != "" {
			_ = os.WriteFile(filepath.Join(opts.Dir, "qemu.log"), []byte(s+"\n"), 0o600)
		}
		close(n.exited)
	}()

	if err := n.waitReady(ctx, start, opts.ReadyTimeout); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "realnode: node %s Ready in %s (guest init %s)\n", n.Name,
		n.Timings.NodeReady.Round(100*time.Millisecond), n.Timings.GuestInit.Round(100*time.Millisecond))
	// The credentials are inside the guest now: keep no copy on the host.
	_ = os.Remove(configTar)
	return n, nil
}

// complete fills in what opts leaves out, building the guest's artifacts
// if none were given.
func (opts *Options) complete(ctx context.Context, c *localcluster.Cluster, log io.Writer) (err error) {
	if opts.NodeName == "" {
		opts.NodeName = "realnode"
	}
	if opts.CPUs == 0 {
		opts.CPUs = 2
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = 3072
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 12 * time.Minute
	}
	if v := os.Getenv("AGENTKERNEL_REALNODE_ACCEL"); v != "" {
		opts.Accel = v
	}
	if opts.Accel == "" {
		opts.Accel = "tcg"
	}
	if opts.KubeletVerbosity == 0 {
		opts.KubeletVerbosity = 1
	}
	if opts.Artifacts == nil {
		if opts.Artifacts, err = Build(ctx, log, ""); err != nil {
			return err
		}
	}
	if opts.Dir == "" {
		opts.Dir = filepath.Join(c.Dir, "realnode-"+opts.NodeName)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return err
	}
	return nil
}

// qemuArgs runs the guest: its disk, its network (the kubelet's port
// forwarded in, the API server's forwarded out) and a serial port per log.
func (n *Node) qemuArgs(opts Options, apiPort, overlay, configTar string) []string {
	netdev := strings.Join([]string{
		"user,id=net0,restrict=on",
		"net=10.0.2.0/24,host=" + gatewayIP + ",dns=10.0.2.3",
		fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:%d", n.KubeletPort, n.KubeletPort),
		// One socat per guest connection: a plain chardev would carry one.
		fmt.Sprintf("guestfwd=tcp:%s:%s-cmd:socat - TCP:127.0.0.1:%s", apiHostIP, apiPort, apiPort),
	}, ",")
	args := []string{
		"-name", "agentkernel-" + opts.NodeName,
		"-machine", "pc", "-accel", opts.Accel, "-cpu", "max",
		"-smp", strconv.Itoa(opts.CPUs), "-m", strconv.Itoa(opts.MemoryMiB),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", opts.Artifacts.Kernel, "-initrd", opts.Artifacts.Initrd,
		"-append", "console=ttyS0 root=/dev/vda panic=-1 apparmor=0 loglevel=4 net.ifnames=0",
		"-drive", "if=virtio,format=qcow2,cache=unsafe,file=" + overlay,
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=net0",
		"-fw_cfg", "name=opt/agentkernel/config.tar,file=" + configTar,
		"-serial", "file:" + n.ConsoleLog,
		"-serial", "file:" + n.KubeletLog,
		"-serial", "file:" + n.ContainerdLog,
		"-serial", "file:" + n.AgentLog,
	}
	if opts.CSI {
		// A fifth log: the PC machine has four ISA serial ports only.
		args = append(args,
			"-device", "virtio-serial-pci,id=vser0",
			"-chardev", "file,id=csilog,path="+n.CSILog,
			"-device", "virtserialport,bus=vser0.0,chardev=csilog,name=agentkernel.csi")
	}
	return args
}

var readyLine = regexp.MustCompile(`agentkernel-init: ([0-9.]+)s ready`)

func (n *Node) waitReady(ctx context.Context, start time.Time, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.exited:
			return fmt.Errorf("the realnode guest stopped before its node was Ready (%v)\n%s", n.waitErr, n.Diagnostics())
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready after %s: %w\n%s", n.Name, timeout, ctx.Err(), n.Diagnostics())
		case <-tick.C:
		}
		if n.Timings.InitReady == 0 {
			if b, err := os.ReadFile(n.ConsoleLog); err == nil {
				if d := longestLockup(b); d >= hungAfter {
					return fmt.Errorf("%w: a CPU of its kernel has been stuck for %s (soft lockup) after %s of boot\n%s",
						ErrGuestHung, d, time.Since(start).Round(time.Second), n.Diagnostics())
				}
				if m := readyLine.FindSubmatch(b); m != nil {
					n.Timings.InitReady = time.Since(start)
					if s, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
						n.Timings.GuestInit = time.Duration(s * float64(time.Second))
					}
					fmt.Fprintf(n.log, "realnode: guest init ready after %s\n", n.Timings.InitReady.Round(100*time.Millisecond))
				}
			}
		}
		node, err := n.client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		for _, cond := range node.Status.Conditions {
			// The guest imports its images while the kubelet registers:
			// Ready means both.
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue && n.Timings.InitReady != 0 {
				n.Timings.NodeReady = time.Since(start)
				return nil
			}
		}
	}
}

// Exited is closed when qemu has exited.
func (n *Node) Exited() <-chan struct{} { return n.exited }

// Diagnostics returns the tails of the guest's logs, for failure messages.
func (n *Node) Diagnostics() string {
	var b strings.Builder
	for _, f := range []string{filepath.Join(n.Dir, "qemu.log"), n.ConsoleLog, n.ContainerdLog, n.KubeletLog, n.AgentLog, n.CSILog} {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(data), "\r", ""), "\n"), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", f, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// Shutdown stops the guest (its disk is thrown away, its logs kept in Dir)
// and deletes the Node object. It is safe to call more than once.
func (n *Node) Shutdown() error {
	var err error
	n.once.Do(func() {
		if n.cmd != nil && n.cmd.Process != nil {
			// Nothing in the guest needs saving: stop it like pulling the plug,
			// but let qemu itself exit cleanly first.
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-n.exited:
			case <-time.After(10 * time.Second):
				_ = n.cmd.Process.Kill()
				<-n.exited
			}
		}
		for _, f := range n.secrets {
			_ = os.Remove(f)
		}
		if n.client != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if e := n.client.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); e != nil && !apierrors.IsNotFound(e) {
				err = fmt.Errorf("delete node %s: %w", n.Name, e)
			}
		}
	})
	return err
}

func (n *Node) createNode(ctx context.Context) error {
	nodes := n.client.CoreV1().Nodes()
	if err := nodes.Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete a stale node %s: %w", n.Name, err)
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name,
			Labels: map[string]string{
				"kubernetes.io/hostname": n.Name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"agentkernel.test/node":  "realnode",
			},
		},
	}
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node %s: %w", n.Name, err)
	}
	// InternalIP only: the apiserver prefers a Hostname address, and the
	// node's name resolves nowhere. The controller-manager writes to a new
	// Node too (its podCIDR, taints): on a conflict, read it again.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		created.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
		created.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(n.KubeletPort)
		_, err := nodes.UpdateStatus(ctx, created, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			if got, getErr := nodes.Get(ctx, n.Name, metav1.GetOptions{}); getErr == nil {
				created = got
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set the addresses of node %s: %w", n.Name, err)
	}
	return nil
}
