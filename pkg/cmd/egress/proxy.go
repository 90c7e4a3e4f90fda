package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/spf13/cobra"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

// EgressProxyOptions runs the egress proxy itself: what the proxy's Pods
// run (the plugin's own binary, so a proxy is always the version of the
// plugin that installed it). Hidden: it is not for people.
type EgressProxyOptions struct {
	Listen       string
	PrivateCIDRs []string
	SyncTimeout  time.Duration

	private []netip.Prefix
	log     *slog.Logger
	// listening, if set, hears the address once the proxy accepts
	// connections (tests listen on port 0).
	listening func(net.Addr)

	cli.Clients
	genericiooptions.IOStreams
}

// NewCmdEgressProxy returns the hidden egress-proxy command.
func NewCmdEgressProxy(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &EgressProxyOptions{Listen: ":3128", SyncTimeout: 2 * time.Minute, IOStreams: streams}
	cmd := &cobra.Command{
		Use:    "egress-proxy [--listen ADDR] [--private-cidr CIDR]...",
		Short:  "Run the egress proxy (what the proxy's Pods run)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Listen, "listen", o.Listen, "Address to accept sandboxes' connections on")
	cmd.Flags().StringArrayVar(&o.PrivateCIDRs, "private-cidr", o.PrivateCIDRs, "Private range the proxy may reach (repeatable)")
	cmd.Flags().DurationVar(&o.SyncTimeout, "sync-timeout", o.SyncTimeout, "How long to wait for the first list of the namespace's Pods")
	return cmd
}

// Complete builds the clients (in a Pod: its service account) and the log.
func (o *EgressProxyOptions) Complete(f cmdutil.Factory) error {
	for _, s := range o.PrivateCIDRs {
		p, err := egress.ParsePrivateCIDR(s)
		if err != nil {
			return err
		}
		o.private = append(o.private, p)
	}
	if err := o.Clients.Complete(f); err != nil {
		return err
	}
	// Everything the proxy says is a JSON line on stdout, client-go's own
	// messages (a watch that broke and is retried) included.
	o.log = slog.New(slog.NewJSONHandler(o.Out, nil))
	klog.SetSlogLogger(o.log)
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{
		func(_ context.Context, err error, msg string, kv ...any) {
			o.log.Warn(msg, append([]any{"err", err.Error()}, kv...)...)
		},
	}
	return nil
}

// selfAddrs are the proxy's Service's addresses with the port it listens
// on: a sandbox that sends a key route through HTTP_PROXY all the same
// names one of them. The Service's name resolves to its cluster IP; if
// it does not, such a client is answered as a plain proxy would.
func (o *EgressProxyOptions) selfAddrs(ctx context.Context, listening net.Addr) []string {
	_, port, err := net.SplitHostPort(listening.String())
	if err != nil {
		return nil
	}
	name := fence.ProxyName + "." + o.Namespace + ".svc"
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", name)
	if err != nil {
		o.log.Warn("self", "name", name, "err", err.Error())
		return nil
	}
	self := make([]string, 0, len(addrs))
	for _, a := range addrs {
		self = append(self, net.JoinHostPort(a.Unmap().String(), port))
	}
	return self
}

// Run watches the namespace's Pods and serves until ctx ends. It accepts
// connections only once the first list is in: a proxy that knew no one
// would refuse everyone, so it does not pretend to be up.
func (o *EgressProxyOptions) Run(ctx context.Context) error {
	grants := egress.NewPodGrants(o.Clientset, o.Namespace, o.log)
	table := egress.NewSecretKeys(o.Clientset, o.Namespace)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go grants.Run(watchCtx)
	go table.Run(watchCtx)
	syncCtx, cancel := context.WithTimeout(ctx, o.SyncTimeout)
	defer cancel()
	for _, wait := range []func(context.Context) error{grants.WaitForSync, table.WaitForSync} {
		if err := wait(syncCtx); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("%w; check the proxy's ServiceAccount may list Pods and the Secret %s in namespace %s (kubectl agentkernel egress install makes its Role), and that its NetworkPolicy lets it reach the API server (kubectl agentkernel egress install --api-server)", err, keys.SecretName, o.Namespace)
		}
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	p := &egress.Proxy{Grants: grants, Keys: table, Self: o.selfAddrs(ctx, ln.Addr()), Private: o.private, Log: o.log}
	publisher := &egress.UsagePublisher{Client: o.Clientset, Namespace: o.Namespace, Proxy: p, Exists: grants.Exists, Log: o.log}
	published := make(chan struct{})
	go func() { defer close(published); publisher.Run(watchCtx) }()
	defer func() { stopWatch(); <-published }()
	srv := p.Server()
	o.log.Info("listening", "addr", ln.Addr().String(), "namespace", o.Namespace, "version", version.Get().Version, "private_cidrs", o.PrivateCIDRs)
	if o.listening != nil {
		o.listening(ln.Addr())
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(p.Listener(ln)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// Stop accepting; requests in flight get a moment. Tunnels are
	// hijacked connections, which Shutdown does not wait for: they end
	// with the process.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		o.log.Warn("shutdown", "err", err.Error())
	}
	o.log.Info("stopped")
	return nil
}
