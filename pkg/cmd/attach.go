package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	dockerterm "github.com/moby/term"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/kubectl/pkg/cmd/attach"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"
	"k8s.io/kubectl/pkg/util/term"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// defaultDetachKeys are kubectl's and docker's.
const defaultDetachKeys = "ctrl-p,ctrl-q"

var attachExample = templates.Examples(`
	# Attach to the agent a sandbox runs as its main process; ctrl-p ctrl-q detaches
	kubectl agentkernel attach work

	# Watch its output only
	kubectl agentkernel attach work -i=false`)

// AttachOptions connects to a sandbox's main process (create --command,
// run --detach) through kubectl's own attach.
type AttachOptions struct {
	Name       string
	Stdin      bool
	Quiet      bool
	DetachKeys string
	// ExitTimeout bounds the wait, once the session ended, for the kubelet
	// to report the main process's exit code.
	ExitTimeout time.Duration

	cli.Clients
	genericiooptions.IOStreams
}

// NewAttachOptions returns AttachOptions writing to streams.
func NewAttachOptions(streams genericiooptions.IOStreams) *AttachOptions {
	return &AttachOptions{Stdin: true, DetachKeys: defaultDetachKeys, ExitTimeout: 2 * time.Minute, IOStreams: streams}
}

// NewCmdAttach returns the attach command.
func NewCmdAttach(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdAttach(f, NewAttachOptions(streams))
}

func newCmdAttach(f cmdutil.Factory, o *AttachOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "attach NAME [-i=false] [--detach-keys KEYS]",
		DisableFlagsInUseLine: true,
		Short:                 "Attach to the agent a sandbox runs as its main process",
		Long: templates.LongDesc(`
			Attach to a sandbox's main process (made with create --command or run --detach)
			through kubectl's own attach: raw terminal, resize, and the local terminal
			restored on every way out.

			The detach keys (ctrl-p ctrl-q unless --detach-keys) leave the process running;
			attach again at any time. When the process ends, attach exits with its exit code.`),
		Example:           attachExample,
		ValidArgsFunction: cli.CompleteSandboxNames(f),
		RunE:              cli.CompleteValidateRun(o, func(_ *cobra.Command, args []string) error { return o.Complete(f, args) }),
	}
	cmd.Flags().BoolVarP(&o.Stdin, "stdin", "i", o.Stdin, "Send your input to the process (-i=false: watch its output only)")
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", o.Quiet, "Only print the process's own output")
	o.Resume.AddNoResumeFlag(cmd.Flags())
	cmd.Flags().StringVar(&o.DetachKeys, "detach-keys", o.DetachKeys, "Keys that detach and leave the process running, e.g. ctrl-p,ctrl-q or ctrl-\\")
	return cmd
}

// Complete takes the sandbox name and builds clients.
func (o *AttachOptions) Complete(f cmdutil.Factory, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("attach takes exactly one sandbox name (got %d): kubectl agentkernel attach NAME", len(args))
	}
	o.Name = args[0]
	o.Resume.Notice = o.ErrOut
	return o.Clients.Complete(f)
}

// Validate checks the arguments without contacting the cluster.
func (o *AttachOptions) Validate() error {
	if err := sandbox.ValidateName(o.Name); err != nil {
		return err
	}
	if _, err := dockerterm.ToBytes(o.DetachKeys); err != nil || o.DetachKeys == "" {
		return fmt.Errorf("--detach-keys %q: use a comma-separated list of keys such as ctrl-p,ctrl-q (letters, ctrl-LETTER, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_)", o.DetachKeys)
	}
	return nil
}

// attachSession is what one attach learned on the way.
type attachSession struct {
	detached atomic.Bool // the user typed the detach keys
	inEnded  atomic.Bool // our stdin ended (a pipe, not a terminal)
}

// Run attaches and, when the session ends, returns the main process's exit
// status (an *ExitError when not 0).
func (o *AttachOptions) Run(ctx context.Context) error {
	pod, err := o.RunningSandbox(ctx, o.Namespace, o.Name)
	if err != nil {
		// A main process that ended: say how it ended.
		if p, ferr := sandbox.Find(ctx, o.Clientset, o.Namespace, o.Name); ferr == nil && sandbox.HasMainProcess(p) {
			if code, ended := sandbox.MainExitCode(p); ended {
				return fmt.Errorf("the main process of sandbox %q has ended with exit code %d: nothing to attach to; its output: kubectl agentkernel logs %s -n %s",
					o.Name, code, o.Name, o.Namespace)
			}
		}
		return err
	}
	if !sandbox.HasMainProcess(pod) {
		return fmt.Errorf("sandbox %q runs no main process to attach to (it was made without create --command or run --detach); for a shell in it use: kubectl agentkernel shell %s", o.Name, o.Name)
	}
	tty := sandbox.MainTTY(pod) && o.Stdin
	if tty && !(term.TTY{In: o.In}).IsTerminalIn() {
		tty = false
		if !o.Quiet {
			fmt.Fprintln(o.ErrOut, "Unable to use a TTY - input is not a terminal or the right kind of file")
		}
	}

	ka := attach.NewAttachOptions(o.IOStreams)
	ka.Namespace, ka.PodName, ka.Pod = pod.Namespace, pod.Name, pod
	ka.ContainerName = sandbox.ContainerName
	ka.Stdin, ka.TTY = o.Stdin, tty
	ka.Quiet = true // kubectl's messages name the Pod and its flags; ours name the sandbox
	ka.Config = o.Config
	ka.DetachKeys = o.DetachKeys
	ka.InterruptParent = cli.KeepRunning()
	var s attachSession
	ka.AttachFunc = o.attachFunc(ctx, &s)
	if tty && !o.Quiet {
		fmt.Fprintf(o.ErrOut, "attached to sandbox/%s; %s detaches and leaves it running\n", o.Name, o.DetachKeys)
	}
	err = ka.Run()
	switch {
	case s.detached.Load():
		if !o.Quiet {
			fmt.Fprintf(o.ErrOut, "\r\ndetached from sandbox/%s, which keeps running; attach again with: kubectl agentkernel attach %s -n %s\n", o.Name, o.Name, o.Namespace)
		}
		return nil
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case err != nil:
		return fmt.Errorf("attach to sandbox %q failed: %w", o.Name, o.ExplainStream(err, o.Namespace))
	}
	// The session ended: the process ended, or (without a terminal) our
	// stdin did, which ends the session but not the process.
	if s.inEnded.Load() && !tty {
		if p, err := o.Clientset.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{}); err == nil && p.UID == pod.UID {
			if code, ended := sandbox.MainExitCode(p); ended {
				return exitStatus(code)
			}
		}
		if !o.Quiet {
			fmt.Fprintf(o.ErrOut, "your input ended: detached from sandbox/%s, which keeps running\n", o.Name)
		}
		return nil
	}
	code, err := sandbox.WaitForMainExit(ctx, o.Clientset, pod, o.ExitTimeout)
	if err != nil {
		return o.Explain(err, o.Namespace)
	}
	return exitStatus(code)
}

func exitStatus(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}

// attachFunc streams the attach like kubectl's DefaultAttachFunc, on the
// command's context and through the plugin's executor, and notes a detach.
func (o *AttachOptions) attachFunc(ctx context.Context, s *attachSession) func(*attach.AttachOptions, *corev1.Container, bool, remotecommand.TerminalSizeQueue) func() error {
	return func(ka *attach.AttachOptions, c *corev1.Container, raw bool, sizeQueue remotecommand.TerminalSizeQueue) func() error {
		return func() error {
			u := o.Clientset.CoreV1().RESTClient().Post().
				Resource("pods").Namespace(ka.Pod.Namespace).Name(ka.Pod.Name).SubResource("attach").
				VersionedParams(&corev1.PodAttachOptions{
					Container: c.Name,
					Stdin:     ka.Stdin,
					Stdout:    ka.Out != nil,
					Stderr:    !ka.DisableStderr,
					TTY:       raw,
				}, scheme.ParameterCodec).URL()
			streamCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			var stdin io.Reader
			if ka.Stdin {
				stdin = &noteEOF{r: ka.In, ended: &s.inEnded}
				if raw {
					keys, _ := dockerterm.ToBytes(ka.DetachKeys)
					stdin = &detacher{r: dockerterm.NewEscapeProxy(stdin, keys), detached: &s.detached, cancel: cancel}
				}
			}
			var stderr io.Writer
			if !ka.DisableStderr {
				stderr = ka.ErrOut
			}
			err := o.Executor.ExecuteWithContext(streamCtx, u, o.Config, stdin, ka.Out, stderr, raw, sizeQueue)
			if s.detached.Load() {
				return nil
			}
			return err
		}
	}
}

// detacher ends the session when the detach keys are typed: the stream is
// cancelled here, so a server that keeps the session open after stdin
// closes (as a simulated node does) cannot keep it.
type detacher struct {
	r        io.Reader
	detached *atomic.Bool
	cancel   context.CancelFunc
}

func (d *detacher) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if errors.Is(err, dockerterm.EscapeError{}) {
		d.detached.Store(true)
		d.cancel()
		return n, io.EOF
	}
	return n, err
}

// noteEOF records that the reader ended.
type noteEOF struct {
	r     io.Reader
	ended *atomic.Bool
}

func (e *noteEOF) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		e.ended.Store(true)
	}
	return n, err
}
