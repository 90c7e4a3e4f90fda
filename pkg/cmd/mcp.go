package cmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/mcp"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

var mcpExample = templates.Examples(`
	# Give Claude Code sandboxes in namespace "agents", with copies to and from the project
	claude mcp add agentkernel -- kubectl agentkernel mcp -n agents --root .

	# Sandboxes that may reach the internet (never private ranges), 30 minutes each, at most 3
	kubectl agentkernel mcp -n agents --profile moderate --ttl 30m --max-sandboxes 3

	# Let the agent use two sandboxes made beforehand, and keep what it makes when it is done
	kubectl agentkernel mcp -n agents --adopt build --adopt review --keep`)

// MCPOptions serves sandboxes to an agent over MCP on stdio.
type MCPOptions struct {
	Sandbox       *cli.SandboxFlags
	Root          string
	MaxSandboxes  int
	Keep          bool
	Adopt         []string
	AdoptSelector string
	MaxOutput     string
	MaxEntries    int
	ExecTimeout   time.Duration
	Timeout       time.Duration
	// PersistMax, PersistStorageClasses and PersistRetain are the most a
	// persistent sandbox an agent asks for may be (mcp.Persist).
	PersistMax            string
	PersistStorageClasses []string
	PersistRetain         time.Duration

	spec         sandbox.Spec
	secretValues map[string]string
	maxOutput    int
	persistMax   resource.Quantity

	cli.Clients
	genericiooptions.IOStreams
}

// NewMCPOptions returns MCPOptions with the server's defaults: restrictive
// sandboxes that end after an hour.
func NewMCPOptions(streams genericiooptions.IOStreams) *MCPOptions {
	sf := cli.NewSandboxFlags()
	sf.TTL = time.Hour
	limits := mcp.DefaultLimits()
	return &MCPOptions{
		Sandbox:       sf,
		MaxSandboxes:  5,
		MaxOutput:     "64Ki",
		MaxEntries:    limits.Entries,
		ExecTimeout:   limits.ExecTimeout,
		Timeout:       5 * time.Minute,
		PersistMax:    "0",
		PersistRetain: 24 * time.Hour,
		IOStreams:     streams,
	}
}

// NewCmdMCP returns the mcp command.
func NewCmdMCP(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdMCP(f, NewMCPOptions(streams))
}

func newCmdMCP(f cmdutil.Factory, o *MCPOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "mcp [flags]",
		DisableFlagsInUseLine: true,
		Short:                 "Serve sandboxes to an AI agent as MCP tools (stdio)",
		Long: templates.LongDesc(`
			Run a Model Context Protocol server on stdin/stdout that gives an agent tools to
			create sandboxes (or claim them from the namespace's warm pools, if they are
			within the server's limits), run commands in them, read, write and list their
			files, copy files in and out (under --root only), list and delete them.

			The agent reaches only the sandboxes this server created in its session, and
			those named with --adopt or matched by --adopt-selector; at most --max-sandboxes
			at once, each ending after its --ttl even if the server is killed. When the
			client disconnects, or on SIGINT/SIGTERM, the server deletes what it created
			(unless --keep). The sandbox flags are the defaults and the most an agent may ask
			for: it may pick a narrower network or smaller resources, never wider or bigger.
			Everything returned from a sandbox is bounded (--max-output) and made printable.
			stdout carries the protocol only; logs go to stderr.`),
		Example: mcpExample,
		Args:    cobra.NoArgs,
		RunE:    cli.CompleteValidateRun(o, func(cmd *cobra.Command, _ []string) error { return o.Complete(f, cmd) }),
	}
	o.Sandbox.AddFlags(cmd)
	fl := cmd.Flags()
	// Here a TTL is the default and the most an agent may ask for, and never 0.
	fl.Lookup("ttl").Usage = "Stop each sandbox after this long, enforced by the cluster even if the server is killed; also the longest an agent may ask for (never 0)"
	fl.StringVar(&o.Root, "root", o.Root, "Local directory copy_in and copy_out may use (nothing outside it, through symlinks neither); without it there are no copy tools")
	fl.IntVar(&o.MaxSandboxes, "max-sandboxes", o.MaxSandboxes, "Most sandboxes the server keeps at once")
	fl.BoolVar(&o.Keep, "keep", o.Keep, "Leave the sandboxes it created running when the server stops (their --ttl still ends them)")
	fl.StringArrayVar(&o.Adopt, "adopt", o.Adopt, "Name of an existing sandbox the agent may use too (repeatable); it is not deleted when the server stops")
	fl.StringVar(&o.AdoptSelector, "adopt-selector", o.AdoptSelector, "Label selector of existing sandboxes the agent may use too")
	fl.StringVar(&o.MaxOutput, "max-output", o.MaxOutput, "Most bytes of each exec stream and of each read_file answer returned to the agent")
	fl.IntVar(&o.MaxEntries, "max-entries", o.MaxEntries, "Most entries of a directory listing returned to the agent")
	fl.DurationVar(&o.ExecTimeout, "exec-timeout", o.ExecTimeout, "Default and longest time one exec may run")
	fl.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for a new sandbox to start")
	fl.StringVar(&o.PersistMax, "persist-max", o.PersistMax, "Largest workspace an agent may ask for with persist (0: the server makes no persistent sandboxes: their storage outlives the session and the TTL, so an admin opts in)")
	fl.StringArrayVar(&o.PersistStorageClasses, "persist-storage-class", o.PersistStorageClasses, "A StorageClass an agent may name for a workspace besides the cluster's default (repeatable)")
	fl.DurationVar(&o.PersistRetain, "persist-retain", o.PersistRetain, "Default and longest time a suspended workspace is kept before gc may delete it (0: until deleted)")
	return cmd
}

// Complete builds the one set of clients the server uses for its life and
// turns the sandbox flags into the spec every create starts from.
func (o *MCPOptions) Complete(f cmdutil.Factory, cmd *cobra.Command) error {
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
	o.spec, o.secretValues, err = o.Sandbox.Spec("mcp", o.Namespace)
	if err != nil {
		return err
	}
	q, err := sandbox.ParseQuantity("--max-output", o.MaxOutput)
	if err != nil {
		return err
	}
	o.maxOutput = int(min(q.Value(), 1<<30))
	if o.persistMax, err = resource.ParseQuantity(o.PersistMax); err != nil || o.persistMax.Sign() < 0 {
		return fmt.Errorf("--persist-max %q is not a size (examples: 0, 5Gi, 20Gi)", o.PersistMax)
	}
	return nil
}

// Validate checks the flags without contacting the cluster.
func (o *MCPOptions) Validate() error {
	if err := o.Sandbox.Validate(); err != nil {
		return err
	}
	if o.Sandbox.TTL <= 0 {
		return fmt.Errorf("--ttl must be positive: every sandbox the MCP server makes has a TTL, so that a server killed outright leaves nothing running for ever")
	}
	if o.maxOutput < 1 || o.maxOutput > 16<<20 {
		return fmt.Errorf("--max-output must be between 1 and 16Mi (got %s)", o.MaxOutput)
	}
	if o.MaxEntries < 1 {
		return fmt.Errorf("--max-entries must be at least 1")
	}
	if o.ExecTimeout <= 0 || o.Timeout <= 0 {
		return fmt.Errorf("--exec-timeout and --timeout must be positive")
	}
	return o.spec.Validate()
}

// Run serves one client on stdin/stdout until it disconnects or a signal
// comes, then deletes what the server created.
func (o *MCPOptions) Run(ctx context.Context) error {
	server, err := mcp.New(mcp.Options{
		Namespace:     o.Namespace,
		Clientset:     o.Clientset,
		Config:        o.Config,
		Executor:      o.Executor,
		Spec:          o.spec,
		SecretValues:  o.secretValues,
		MaxSandboxes:  o.MaxSandboxes,
		Keep:          o.Keep,
		Adopt:         o.Adopt,
		AdoptSelector: o.AdoptSelector,
		Root:          o.Root,
		Persist:       mcp.Persist{MaxSize: o.persistMax, StorageClasses: o.PersistStorageClasses, MaxRetain: o.PersistRetain},
		Limits:        mcp.Limits{OutputBytes: o.maxOutput, Entries: o.MaxEntries, ExecTimeout: o.ExecTimeout},
		StartTimeout:  o.Timeout,
		Pools:         mcp.WarmPools(), // create_sandbox's pool: the namespace's warm pools
		Log:           slog.New(slog.NewTextHandler(o.ErrOut, nil)),
		Version:       version.Get().Version,
	})
	if err != nil {
		return err
	}
	err = server.Serve(ctx, &sdk.IOTransport{Reader: readCloser(o.In), Writer: writeCloser{o.Out}})
	if ctx.Err() != nil {
		if err != nil {
			fmt.Fprintln(o.ErrOut, "error: "+o.Explain(err, o.Namespace).Error())
		}
		return context.Cause(ctx)
	}
	return o.Explain(err, o.Namespace)
}

func readCloser(r io.Reader) io.ReadCloser {
	if rc, ok := r.(io.ReadCloser); ok {
		return rc
	}
	return io.NopCloser(r)
}

// writeCloser leaves stdout open when the transport closes: Execute may
// still need it.
type writeCloser struct{ io.Writer }

func (writeCloser) Close() error { return nil }
