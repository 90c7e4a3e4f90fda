package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
)

var runExample = templates.Examples(`
	# Claude Code on a repository: the repository goes in, the agent works on it,
	# the result comes back out (also if the agent fails), the sandbox goes away
	ANTHROPIC_API_KEY=... kubectl agentkernel run --agent claude \
	  --copy-in ./my-repo --copy-out my-repo:./my-repo.after -w my-repo \
	  -- claude -p "make the tests pass" --permission-mode acceptEdits

	# Interactively, with a terminal; keep the sandbox afterwards
	kubectl agentkernel run --agent codex --copy-in ./my-repo -w my-repo --keep -it

	# The agent as the sandbox's main process: detach, attach later
	kubectl agentkernel run work --agent claude --copy-in ./my-repo --detach
	kubectl agentkernel attach work

	# Any image, any command; the exit status is the command's
	kubectl agentkernel run --image python:3.13-slim --copy-in ./src -- python src/main.py

	# At once, from a pool of warm sandboxes made for the agent
	# (kubectl agentkernel pool create claude --agent claude --size 3)
	ANTHROPIC_API_KEY=... kubectl agentkernel run --pool claude --agent claude \
	  --copy-in ./my-repo --copy-out my-repo:./my-repo.after -w my-repo -- claude -p "fix the build"`)

// RunOptions runs one command in a fresh sandbox: create, copy in, run,
// copy out, delete.
type RunOptions struct {
	Name    string // "" until Complete: a generated one if none was given
	Command []string
	CopyIn  []string // LOCAL[:SANDBOX_PATH]
	CopyOut []string // SANDBOX_PATH[:LOCAL]
	Keep    bool
	Detach  bool
	Stdin   bool
	TTY     bool
	Quiet   bool
	Workdir string
	Timeout time.Duration
	// DeleteTimeout bounds the wait for the sandbox to be gone at the end.
	DeleteTimeout   time.Duration
	CreateNamespace bool
	MaxBytes        string
	MaxFiles        int64

	Sandbox *cli.SandboxFlags
	Persist cli.PersistFlags
	Claim   *cli.PoolClaimFlags

	copyIns, copyOuts []copySpec
	match             []string // with --pool: the flags the claim insists on
	maxBytes          resource.Quantity
	spec              sandbox.Spec
	secretValues      map[string]string

	cli.Clients
	genericiooptions.IOStreams
}

// NewRunOptions returns RunOptions with the defaults of create.
func NewRunOptions(streams genericiooptions.IOStreams) *RunOptions {
	return &RunOptions{
		Timeout:       5 * time.Minute,
		DeleteTimeout: 2 * time.Minute,
		Sandbox:       cli.NewSandboxFlags(),
		Claim:         &cli.PoolClaimFlags{},
		IOStreams:     streams,
	}
}

// NewCmdRun returns the run command.
func NewCmdRun(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdRun(f, NewRunOptions(streams))
}

// newCmdRun lets tests supply options (a fake environment, a recording
// executor).
func newCmdRun(f cmdutil.Factory, o *RunOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "run [NAME] [--agent PRESET] [flags] [--copy-in LOCAL[:PATH]]... [--copy-out PATH[:LOCAL]]... [-- COMMAND [args...]]",
		DisableFlagsInUseLine: true,
		Short:                 "Run a command in a fresh sandbox: create, copy in, run, copy out, delete",
		Long: templates.LongDesc(`
			Run one command (an agent) in a sandbox of its own: create the sandbox (the
			flags of create, and --agent presets, apply), copy each --copy-in into it,
			run the command, copy each --copy-out back, also when the command failed (an
			agent's partial work is still wanted), and delete the sandbox unless --keep.
			NAME is generated when omitted; the command defaults to the --agent preset's.

			--copy-in LOCAL[:PATH] puts a local file or directory at PATH (default: into
			/workspace/); --copy-out PATH[:LOCAL] brings PATH back to LOCAL (default: into
			the current directory). Relative sandbox paths start at /workspace.

			Exit status: the command's own; 125 when the plugin failed (before the command
			ran, or when copying out or deleting failed after it exited 0); 130 or 143 when
			interrupted by SIGINT or SIGTERM. A failure or Ctrl-C at any step removes
			everything the run made (unless --keep); a second Ctrl-C stops the removal and
			says what is left. Progress goes to stderr (-q for none); stdout carries
			only the command's output.

			With --detach the command becomes the sandbox's main process, with stdin and
			a terminal kept open; it starts once the copies are in, and run returns: attach
			to it with 'kubectl agentkernel attach NAME'.

			With --pool POOL the sandbox is claimed warm from the pool (kubectl agentkernel
			pool create), or created cold from the pool's definition when none is ready
			(--pool-wait waits for one instead); stderr says which. The pool fixes the
			sandbox's shape: a shaping flag given too (--image, --cpu, --profile...) must
			match the pool's, or the run is refused; --env, --secret-env, --label, --ttl and
			--idle-timeout are the claim's own. --agent with --pool needs a pool made with
			the same --agent: the preset's credentials come with the claim, and its install
			step (if it has one) runs in the claimed sandbox before the copies.`),
		Example:           runExample,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f, cmd, args); err != nil {
				return o.failed(cmd.Context(), err)
			}
			if err := o.Validate(); err != nil {
				return o.failed(cmd.Context(), err)
			}
			return o.Run(cmd.Context())
		},
	}
	o.Sandbox.AddFlags(cmd)
	o.Persist.AddFlags(cmd)
	o.Claim.AddFlags(cmd, f)
	fl := cmd.Flags()
	fl.StringArrayVar(&o.CopyIn, "copy-in", o.CopyIn, "Copy a local file or directory into the sandbox before the command: LOCAL[:SANDBOX_PATH] (repeatable; default path /workspace/)")
	fl.StringArrayVar(&o.CopyOut, "copy-out", o.CopyOut, "Copy a file or directory out of the sandbox after the command, also when it failed: SANDBOX_PATH[:LOCAL] (repeatable; default local .)")
	fl.BoolVar(&o.Keep, "keep", o.Keep, "Keep the sandbox afterwards (also after a failure)")
	fl.BoolVarP(&o.Detach, "detach", "d", o.Detach, "Start the command as the sandbox's main process (stdin and a terminal kept open) and return; attach to it later")
	fl.BoolVarP(&o.Stdin, "stdin", "i", o.Stdin, "Pass stdin to the command")
	fl.BoolVarP(&o.TTY, "tty", "t", o.TTY, "Allocate a terminal (with -i, when stdin is a terminal)")
	fl.BoolVarP(&o.Quiet, "quiet", "q", o.Quiet, "No progress on stderr: only the command's own output")
	fl.StringVarP(&o.Workdir, "workdir", "w", o.Workdir, "Working directory of the command; relative paths start at /workspace (default: /workspace)")
	fl.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for the sandbox to start; 0 waits for ever")
	fl.BoolVar(&o.CreateNamespace, "create-namespace", o.CreateNamespace, `Create the namespace, labelled pod-security.kubernetes.io/enforce=restricted, if it does not exist (and delete it at the end)`)
	fl.StringVar(&o.MaxBytes, "max-bytes", o.MaxBytes, "Copying out: stop after this much file content (default: the sandbox's ephemeral-storage limit)")
	fl.Int64Var(&o.MaxFiles, "max-files", o.MaxFiles, "Copying out: stop after this many entries (default: one per 4 KiB of the ephemeral-storage limit)")
	// A mistyped flag is a failure of the plugin, before the command ran.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &statusError{PluginFailed, err}
	})
	return cli.SpeakFlags(cmd)
}

// Complete reads the name, command and copies, applies the --agent preset
// (failing before anything is made when a credential it needs is not in
// the environment) and builds the sandbox's spec.
func (o *RunOptions) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	names := args
	if dash := cmd.ArgsLenAtDash(); dash >= 0 {
		names, o.Command = args[:dash], args[dash:]
	} else if len(args) > 1 {
		return fmt.Errorf("put '--' before the command: kubectl agentkernel run %s -- %s", args[0], strings.Join(args[1:], " "))
	}
	if len(names) > 1 {
		return fmt.Errorf("run takes at most one sandbox name before '--' (got %d)", len(names))
	}
	if err := o.Sandbox.Complete(cmd); err != nil {
		return err
	}
	for _, n := range o.Sandbox.Notices {
		fmt.Fprintln(o.ErrOut, "note: "+n)
	}
	preset := o.Sandbox.Preset
	if len(o.Command) == 0 && preset != nil {
		o.Command = preset.Command
	}
	if len(o.Command) == 0 {
		hint := ""
		if preset == nil {
			hint = ", or pick an --agent preset that has one"
		}
		return fmt.Errorf("no command to run: give it after '--' (kubectl agentkernel run [NAME] -- COMMAND [args...])%s", hint)
	}
	if len(names) == 1 {
		o.Name = names[0]
	} else {
		o.Name = generateName(preset)
	}
	var err error
	for _, s := range o.CopyIn {
		c, err := parseCopyIn(s)
		if err != nil {
			return err
		}
		o.copyIns = append(o.copyIns, c)
	}
	for _, s := range o.CopyOut {
		c, err := parseCopyOut(s)
		if err != nil {
			return err
		}
		o.copyOuts = append(o.copyOuts, c)
	}
	if o.MaxBytes != "" {
		if o.maxBytes, err = sandbox.ParseQuantity("--max-bytes", o.MaxBytes); err != nil {
			return err
		}
	}
	if o.Workdir != "" {
		if o.Workdir, err = transfer.CleanRemotePath(o.Workdir); err != nil {
			return fmt.Errorf("--workdir: %v", err)
		}
	}
	if o.Claim.Pool != "" {
		if o.match, err = cli.ClaimMatch(cmd); err != nil {
			return err
		}
	}
	if err := o.Clients.Complete(f); err != nil {
		return err
	}
	if o.spec, o.secretValues, err = o.Sandbox.Spec(o.Name, o.Namespace); err != nil {
		return err
	}
	if err := o.Persist.FromPreset(cmd, preset); err != nil {
		return err
	}
	if err := o.Persist.Apply(&o.spec); err != nil {
		return err
	}
	if o.Detach {
		o.spec.Command, o.spec.Stdin, o.spec.TTY = o.Command, true, true
		o.spec.HoldCommand = true // until the copies are in
	}
	return nil
}

// generateName makes a sandbox name from the preset's: "claude-x7k2p".
func generateName(p *agents.Preset) string {
	base := "run"
	if p != nil {
		base = p.Name
	}
	return sandbox.GeneratedName(base)
}

// Validate checks the options without contacting the cluster.
func (o *RunOptions) Validate() error {
	if err := o.Sandbox.Validate(); err != nil {
		return err
	}
	if err := o.Claim.Validate(); err != nil {
		return err
	}
	pool := o.Claim.Pool != ""
	switch {
	case pool && o.CreateNamespace:
		return fmt.Errorf("--create-namespace cannot be used with --pool: a pool lives in a namespace that exists")
	case pool && o.spec.Workspace != nil:
		return fmt.Errorf("%s cannot be used with --pool: run does not claim persistent sandboxes; claim one with create NAME --pool POOL --persist (from a pool made with --persist), then run --persist NAME", o.Persist.What())
	case pool && o.Detach:
		return fmt.Errorf("--detach cannot be used with --pool: a warm sandbox was started before the claim, without the command as its main process; run it without --detach, or leave out --pool")
	case o.TTY && !o.Stdin && !o.Detach:
		return fmt.Errorf("-t needs -i: a terminal without input is no use (kubectl agentkernel run -it ...)")
	case o.Detach && len(o.copyOuts) > 0:
		return fmt.Errorf("--copy-out needs the command to end, and --detach does not wait for it: copy out later with kubectl agentkernel cp")
	case o.Detach && (o.Stdin || o.TTY):
		return fmt.Errorf("-i/-t are for a command run here; with --detach the main process always has stdin and a terminal: attach to it")
	case o.Timeout < 0:
		return fmt.Errorf("--timeout must not be negative")
	case o.MaxFiles < 0:
		return fmt.Errorf("--max-files must not be negative")
	}
	return o.spec.Validate()
}

// Run does every step. The sandbox is deleted on every way out, unless
// --keep or --detach, on the cleanup context: Ctrl-C stops the work, not
// the tidying up.
func (o *RunOptions) Run(ctx context.Context) (err error) {
	prog := cli.NewProgress(o.ErrOut, o.Quiet)
	label := "sandbox/" + o.Name
	created, refilled, err := o.makeSandbox(ctx, prog)
	if err != nil {
		return o.failed(ctx, err) // Create (or the claim) removed what it made
	}
	// The pool's refill goes on while the sandbox is used; it is waited
	// for last, after the sandbox is gone.
	defer refilled()
	pod := created.Pod
	defer func() {
		switch {
		case o.Detach && err == nil: // it runs on, for attach
		case o.spec.Workspace != nil:
			err = o.suspendAtEnd(ctx, prog, err)
		case o.Keep:
			prog.Linef("%s kept: kubectl agentkernel shell %s -n %s; delete it with: kubectl agentkernel delete %s -n %s", label, o.Name, o.Namespace, o.Name, o.Namespace)
		default:
			prog.Linef("deleting %s", label)
			prog.Status("deleting " + label)
			terminating, derr := created.Delete(ctx, o.Clientset, o.DeleteTimeout)
			prog.Done()
			switch {
			case derr != nil:
				err = withLaterFailure(ctx, err, derr)
			case terminating:
				prog.Linef("%s is deleted but still terminating: the cluster is slow to finish (see: kubectl get pod %s -n %s)", label, created.Pod.Name, o.Namespace)
			}
			if err == nil && ctx.Err() != nil {
				err = context.Cause(ctx) // Ctrl-C while deleting: the status says so
			}
		}
	}()

	if err := o.prepare(ctx, pod, prog); err != nil {
		return o.failed(ctx, err)
	}
	if o.Detach {
		if err := startMain(ctx, o.ExecIn(pod)); err != nil {
			return o.failed(ctx, err)
		}
		prog.Linef("%s is running %s as its main process: attach with: kubectl agentkernel attach %s -n %s", label, o.Command[0], o.Name, o.Namespace)
		return nil
	}

	prog.Linef("running: %s", quoteArgs(o.Command))
	t, streams := cli.Terminal(o.In, o.Out, o.ErrOut, o.Stdin, o.TTY, o.Quiet)
	command := sandbox.ExecCommand(o.Command, nil, o.Workdir)
	execErr := t.Safe(func() error { return o.ExecIn(pod).Stream(ctx, command, streams) })
	code, ran := sandbox.ExitCode(execErr)
	if ctx.Err() != nil {
		return context.Cause(ctx) // interrupted: no copies out, straight to deleting
	}
	var cmdErr error
	if execErr != nil && !ran {
		cmdErr = fmt.Errorf("running %s in %s failed: %w", o.Command[0], label, o.ExplainStream(execErr, o.Namespace))
	}

	// Also after a failure: an agent's partial work is still wanted.
	var outErrs []error
	for _, c := range o.copyOuts {
		if err := o.copyOut(ctx, pod, c, prog); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			outErrs = append(outErrs, err)
		}
	}
	switch {
	case cmdErr != nil:
		return &statusError{PluginFailed, errors.Join(append([]error{cmdErr}, outErrs...)...)}
	case len(outErrs) > 0 && code != 0:
		return &statusError{code, errors.Join(outErrs...)}
	case len(outErrs) > 0:
		return &statusError{PluginFailed, errors.Join(outErrs...)}
	case code != 0:
		return &ExitError{Code: code}
	}
	return nil
}

// makeSandbox creates the sandbox, or with --pool claims it (internal/cli/poolclaim.go)
// and says how it got it. refilled waits for the claimed member's
// replacement in the pool (a no-op for a cold create).
func (o *RunOptions) makeSandbox(ctx context.Context, prog *cli.Progress) (*sandbox.Created, func(), error) {
	label := "sandbox/" + o.Name
	create := sandbox.CreateOptions{
		SecretValues:    o.secretValues,
		CreateNamespace: o.CreateNamespace,
		Wait:            true,
		Timeout:         o.Timeout,
		// With --allow-host: the namespace's proxy (installed on first
		// use) and its address in the sandbox's proxy variables, as create.
		Prepare: o.PrepareEgress(cmdutil.DryRunNone, o.ErrOut),
	}
	if o.Claim.Pool == "" {
		prog.Linef("creating %s", label)
	} else {
		prog.Linef("claiming %s from pool %s", label, o.Claim.Pool)
	}
	report, stopStatus := prog.WaitStatus(ctx, o.Clientset, o.Namespace, o.Name)
	create.Progress = report
	if o.spec.Workspace != nil {
		created, err := o.createOrResume(ctx, create)
		stopStatus()
		return created, func() {}, err
	}
	if o.Claim.Pool == "" {
		created, err := sandbox.Create(ctx, o.Clientset, &o.spec, create)
		stopStatus()
		if err != nil {
			return nil, nil, o.Explain(err, o.Namespace)
		}
		cli.WarnAdmission(o.ErrOut, created)
		return created, func() {}, nil
	}
	a, err := o.Acquire(ctx, &o.spec, o.secretValues, o.match, *o.Claim, create)
	stopStatus()
	if err != nil {
		return nil, nil, err
	}
	prog.Linef("%s: %s", label, cli.AcquiredHow(a, o.Claim.Pool))
	return &sandbox.Created{Pod: a.Pod, Secret: a.Secret}, func() { cli.FinishClaim(a, o.ErrOut) }, nil
}

// quoteArgs shows a command line as a shell would need it typed.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	s := strings.Join(q, " ")
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}
