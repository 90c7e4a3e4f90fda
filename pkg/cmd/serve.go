package cmd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/envd"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

var serveExample = templates.Examples(`
	# Serve E2B's API for namespace "agents", then run code written for E2B's SDK unchanged
	kubectl agentkernel serve -n agents > e2b.env &
	sleep 2; . ./e2b.env   # or copy the three export lines it prints
	node my-e2b-app.js

	# Sandbox.create() claims from the warm pool "e2b" (instant), sandboxes up to 2h
	kubectl agentkernel serve -n agents --pool e2b --ttl 2h

	# Keys of your own, one a line; E2B envVars named *_KEY or *_TOKEN go into Secrets
	kubectl agentkernel serve -n agents --api-key-file keys.txt --secret-env-var '*_KEY' --secret-env-var '*_TOKEN'`)

// ServeOptions serves E2B's API over the namespace's sandboxes.
type ServeOptions struct {
	Sandbox        *cli.SandboxFlags
	Pool           string
	Listen         string
	TLSCertFile    string
	TLSKeyFile     string
	APIKeyFile     string
	SecretEnvVars  []string
	MaxSandboxes   int
	Timeout        time.Duration
	ShutdownPeriod time.Duration

	spec         sandbox.Spec
	secretValues map[string]string
	keys         []string
	minted       bool
	presets      *agents.Set

	cli.Clients
	genericiooptions.IOStreams
}

// NewServeOptions returns ServeOptions with serve's defaults: loopback,
// restrictive sandboxes of at most an hour.
func NewServeOptions(streams genericiooptions.IOStreams) *ServeOptions {
	sf := cli.NewSandboxFlags()
	sf.TTL = time.Hour
	return &ServeOptions{
		Sandbox:        sf,
		Listen:         "127.0.0.1:3044",
		MaxSandboxes:   10,
		Timeout:        5 * time.Minute,
		ShutdownPeriod: 10 * time.Second,
		IOStreams:      streams,
	}
}

// NewCmdServe returns the serve command.
func NewCmdServe(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewServeOptions(streams)
	cmd := &cobra.Command{
		Use:                   "serve [flags]",
		DisableFlagsInUseLine: true,
		Short:                 "Serve E2B's API, so code written for E2B's SDK runs on this cluster's sandboxes",
		Long: templates.LongDesc(`
			Serve E2B's API (its control plane and each sandbox's envd) on one local address,
			so that unchanged code using E2B's SDK creates, uses and kills sandboxes in this
			namespace. It prints the three environment variables the SDK reads (E2B_API_URL,
			E2B_SANDBOX_URL, E2B_API_KEY) on stdout; logs go to stderr.

			A template ID names what a sandbox is made from: "base" is serve's own sandbox
			(the sandbox flags; or a claim from --pool), the name of a warm pool in the
			namespace claims from it, an agent preset's name (kubectl agentkernel agents)
			takes its image and resources. The sandbox flags are the defaults and the most a
			request or a pool may give a sandbox; --ttl is the longest a sandbox may live.
			Its Pod's deadline is its start plus --ttl, which the cluster enforces even if
			serve is gone. Its E2B timeout (timeoutMs, setTimeout, connect) may be extended
			or shortened within that deadline: serve kills a sandbox whose timeout has
			passed within seconds, and a timeout past the deadline ends at the deadline.

			The API key is minted and printed unless --api-key-file gives keys. Each
			sandbox's envd access token is derived from the keys and the sandbox, never
			stored. serve listens on loopback unless given a certificate: anything else
			needs --tls-cert-file and --tls-private-key-file.`),
		Example: serveExample,
		Args:    cobra.NoArgs,
		RunE:    cli.CompleteValidateRun(o, func(cmd *cobra.Command, _ []string) error { return o.Complete(f, cmd) }),
	}
	o.Sandbox.AddFlags(cmd)
	fl := cmd.Flags()
	fl.Lookup("ttl").Usage = "Longest a sandbox may live, its timeouts extended or not: its Pod's deadline, enforced by the cluster even if serve is killed; never 0"
	fl.StringVar(&o.Pool, "pool", o.Pool, "Warm pool the template \"base\" claims from (kubectl agentkernel pool create), so Sandbox.create() is instant")
	_ = cmd.RegisterFlagCompletionFunc("pool", cli.CompletePoolNames(f))
	fl.StringVar(&o.Listen, "listen", o.Listen, "Address to listen on (HOST:PORT); anything but loopback needs --tls-cert-file and --tls-private-key-file")
	fl.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "Certificate (PEM) to serve HTTPS with")
	fl.StringVar(&o.TLSKeyFile, "tls-private-key-file", o.TLSKeyFile, "Private key (PEM) of --tls-cert-file")
	fl.StringVar(&o.APIKeyFile, "api-key-file", o.APIKeyFile, "File of the API keys serve accepts, one e2b_<hex> key a line (default: mint one and print it)")
	fl.StringArrayVar(&o.SecretEnvVars, "secret-env-var", o.SecretEnvVars, "Name, or glob such as '*_KEY', of a sandbox's E2B envVars entry whose value goes into the sandbox's Secret instead of its Pod spec (repeatable)")
	fl.IntVar(&o.MaxSandboxes, "max-sandboxes", o.MaxSandboxes, "Most sandboxes serve runs at once (0: no limit); more creates are refused as E2B refuses them (429)")
	fl.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for a new sandbox to start")
	return cmd
}

// Complete reads the keys and builds the clients and the spec every
// sandbox starts from.
func (o *ServeOptions) Complete(f cmdutil.Factory, cmd *cobra.Command) error {
	if err := o.Sandbox.Complete(cmd); err != nil {
		return err
	}
	for _, n := range o.Sandbox.Notices {
		fmt.Fprintln(o.ErrOut, "note: "+n)
	}
	if err := o.Clients.Complete(f); err != nil {
		return err
	}
	var err error
	if o.spec, o.secretValues, err = o.Sandbox.Spec("e2b", o.Namespace); err != nil {
		return err
	}
	if o.presets, err = agents.Load(o.Sandbox.AgentsFile, o.Sandbox.AgentsFile != ""); err != nil {
		return err
	}
	if o.APIKeyFile == "" {
		o.keys, o.minted = []string{e2b.NewAPIKey()}, true
		return nil
	}
	file, err := os.Open(o.APIKeyFile)
	if err != nil {
		return fmt.Errorf("--api-key-file: %w", err)
	}
	defer file.Close()
	if o.keys, err = e2b.ReadAPIKeys(file); err != nil {
		return fmt.Errorf("--api-key-file %s: %w", o.APIKeyFile, err)
	}
	return nil
}

// Validate checks the flags without contacting the cluster.
func (o *ServeOptions) Validate() error {
	if err := o.Sandbox.Validate(); err != nil {
		return err
	}
	if o.Sandbox.TTL <= 0 {
		return errors.New("--ttl must be positive: every sandbox serve makes has a timeout, so that a serve killed outright leaves nothing running for ever")
	}
	if o.Pool != "" {
		if err := pool.ValidatePoolName(o.Pool); err != nil {
			return fmt.Errorf("--pool: %w", err)
		}
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return errors.New("--tls-cert-file and --tls-private-key-file go together: give both, or neither")
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q is not HOST:PORT (e.g. 127.0.0.1:3044): %v", o.Listen, err)
	}
	if !loopback(host) && o.TLSCertFile == "" {
		return fmt.Errorf("--listen %s is not a loopback address: serving E2B's API (API keys, access tokens, everything a sandbox says) beyond this machine needs TLS: give --tls-cert-file and --tls-private-key-file, or listen on 127.0.0.1", o.Listen)
	}
	if o.Timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	if o.MaxSandboxes < 0 {
		return errors.New("--max-sandboxes must be 0 (no limit) or more")
	}
	return o.spec.Validate()
}

// loopback reports whether host names only this machine.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run serves until a signal, then stops taking requests, lets those under
// way finish (ShutdownPeriod) and waits for pool refills.
func (o *ServeOptions) Run(ctx context.Context) error {
	log := slog.New(slog.NewTextHandler(o.ErrOut, nil))
	srv, err := e2b.New(e2b.Options{
		Namespace:         o.Namespace,
		Clientset:         o.Clientset,
		Config:            o.Config,
		Executor:          o.Executor,
		Spec:              o.spec,
		SecretValues:      o.secretValues,
		SecretEnvPatterns: o.SecretEnvVars,
		MaxSandboxes:      o.MaxSandboxes,
		DefaultPool:       o.Pool,
		Agents:            o.presets,
		APIKeys:           o.keys,
		StartTimeout:      o.Timeout,
		Prepare:           o.PrepareEgress(cmdutil.DryRunNone, o.ErrOut),
		Envd:              envd.NewHandler(),
		Log:               log,
	})
	if err != nil {
		return err
	}
	scheme := "http"
	var tlsConfig *tls.Config
	if o.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("loading --tls-cert-file and --tls-private-key-file: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w; pick another address with --listen", o.Listen, err)
	}
	if tlsConfig != nil {
		l = tls.NewListener(l, tlsConfig)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	url := scheme + "://" + l.Addr().String()
	fmt.Fprintf(o.Out, "export E2B_API_URL=%s\nexport E2B_SANDBOX_URL=%s\nexport E2B_API_KEY=%s\n", url, url, o.keys[0])
	if f, ok := o.Out.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	log.Info("serving E2B's API", "url", url, "namespace", o.Namespace, "mintedKey", o.minted)

	// Sandboxes' E2B timeouts are serve's to enforce (their Pods' deadlines
	// are only the ceiling): until serve stops.
	ectx, stopEnforcing := context.WithCancel(ctx)
	enforced := make(chan struct{})
	go func() { srv.EnforceTimeouts(ectx, e2b.DefaultEnforceEvery); close(enforced) }()
	defer func() { stopEnforcing(); <-enforced }()

	done := make(chan error, 1)
	go func() { done <- hs.Serve(l) }()
	select {
	case err := <-done:
		srv.Wait()
		return fmt.Errorf("serving on %s: %w", url, err)
	case <-ctx.Done():
	}
	log.Info("stopping: finishing the requests under way", "within", o.ShutdownPeriod.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownPeriod)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	srv.Wait()
	return context.Cause(ctx)
}
