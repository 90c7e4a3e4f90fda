package cmd

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/cmd/portforward"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var portForwardExample = templates.Examples(`
	# The dev server an agent started on port 3000, at localhost:3000
	kubectl agentkernel port-forward work 3000

	# Local port 8080 to the sandbox's 3000; a random local port to its 9229
	kubectl agentkernel port-forward work 8080:3000 :9229`)

// PortForwardOptions forwards local ports to a sandbox through kubectl's
// own port-forward.
type PortForwardOptions struct {
	Name    string
	Address []string
	ports   []string // LOCAL:REMOTE, checked

	// kubectl's options; its PortForwarder does the forwarding.
	kubectl *portforward.PortForwardOptions

	cli.Clients
	genericiooptions.IOStreams
}

// NewPortForwardOptions returns PortForwardOptions writing to streams.
func NewPortForwardOptions(streams genericiooptions.IOStreams) *PortForwardOptions {
	return &PortForwardOptions{
		Address:   []string{"localhost"},
		kubectl:   portforward.NewDefaultPortForwardOptions(streams),
		IOStreams: streams,
	}
}

// NewCmdPortForward returns the port-forward command.
func NewCmdPortForward(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdPortForward(f, NewPortForwardOptions(streams))
}

func newCmdPortForward(f cmdutil.Factory, o *PortForwardOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "port-forward NAME [LOCAL_PORT:]REMOTE_PORT...",
		DisableFlagsInUseLine: true,
		Short:                 "Forward local ports to a sandbox",
		Long: templates.LongDesc(`
			Forward local ports to ports in a sandbox, through kubectl's own port-forward
			(WebSocket, falling back to SPDY). It goes through the API server and the
			kubelet, so a sandbox's NetworkPolicy, which keeps other Pods out, does not stop
			it. It listens on localhost unless --address says otherwise, and runs until
			Ctrl-C or until the sandbox ends.`),
		Example:           portForwardExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f, args); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.Resume.AddNoResumeFlag(cmd.Flags())
	cmd.Flags().StringSliceVar(&o.Address, "address", o.Address, "Addresses to listen on (comma-separated): IP addresses or localhost")
	return cmd
}

// Complete takes the sandbox name and the ports.
func (o *PortForwardOptions) Complete(f cmdutil.Factory, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("port-forward needs a sandbox name and at least one port: kubectl agentkernel port-forward NAME [LOCAL_PORT:]REMOTE_PORT [...]")
	}
	o.Name = args[0]
	if err := sandbox.ValidateName(o.Name); err != nil {
		return err
	}
	o.ports = nil
	for _, p := range args[1:] {
		local, remote, err := parsePortPair(p)
		if err != nil {
			return err
		}
		o.ports = append(o.ports, local+":"+strconv.Itoa(remote))
	}
	o.Resume.Notice = o.ErrOut
	return o.Clients.Complete(f)
}

// parsePortPair reads [LOCAL:]REMOTE; an empty LOCAL (":3000") or 0 picks
// a free local port.
func parsePortPair(s string) (local string, remote int, err error) {
	l, r, pair := strings.Cut(s, ":")
	if !pair {
		l, r = s, s
	}
	bad := fmt.Errorf("port %q: use [LOCAL_PORT:]REMOTE_PORT, e.g. 3000, 8080:3000 or :3000; ports are 1 to 65535 (LOCAL_PORT 0 or empty: any free port)", s)
	rn, err := strconv.ParseUint(r, 10, 16)
	if err != nil || rn == 0 {
		return "", 0, bad
	}
	if l != "" {
		if _, err := strconv.ParseUint(l, 10, 16); err != nil {
			return "", 0, bad
		}
	}
	return l, int(rn), nil
}

// Run finds the sandbox and forwards until ctx ends or the sandbox does.
func (o *PortForwardOptions) Run(ctx context.Context) error {
	pod, err := o.RunningSandbox(ctx, o.Namespace, o.Name)
	if err != nil {
		return err
	}
	if err := tcpOnly(pod, o.ports); err != nil {
		return err
	}
	k := o.kubectl
	k.Namespace, k.PodName = pod.Namespace, pod.Name
	k.Config = o.Config
	k.RESTClient = o.Clientset.CoreV1().RESTClient()
	k.PodClient = o.Clientset.CoreV1()
	k.Address, k.Ports = o.Address, o.ports
	k.StopChannel, k.ReadyChannel = make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			close(k.StopChannel)
		case <-done:
		}
	}()
	u := k.RESTClient.Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward").URL()
	err = k.PortForwarder.ForwardPorts("POST", u, *k)
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil {
		return fmt.Errorf("port-forward to sandbox %q: %w", o.Name, o.ExplainStream(err, o.Namespace))
	}
	return nil
}

// tcpOnly refuses ports the sandbox declares for UDP only: port-forward
// carries TCP.
func tcpOnly(pod *corev1.Pod, pairs []string) error {
	tcp, udp := map[int32]bool{}, map[int32]bool{}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Protocol == corev1.ProtocolUDP {
				udp[p.ContainerPort] = true
			} else {
				tcp[p.ContainerPort] = true
			}
		}
	}
	for _, pair := range pairs {
		_, r, _ := strings.Cut(pair, ":")
		n, _ := strconv.Atoi(r)
		if udp[int32(n)] && !tcp[int32(n)] {
			return fmt.Errorf("port %d of sandbox %q is declared for UDP only, and port-forward carries TCP", n, sandbox.NameOf(pod))
		}
	}
	return nil
}
