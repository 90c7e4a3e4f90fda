package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// Env is what the scenarios share: the two binaries, the cluster, and the
// long-lived sandbox and pod that exec and cp rows work on.
type Env struct {
	Plugin, Kubectl string // binaries
	Kubeconfig      string // "" until a cluster is up
	Namespace       string // the bench's own namespace
	Tmp             string // scratch space, removed at the end

	// Config and Clientset talk to the cluster for setup and for the rows
	// that work in this process, with the client rate of -qps/-burst.
	Config    *restclient.Config
	Clientset kubernetes.Interface

	// Scale rows: how many sandboxes, from how many processes, how small.
	ScaleN, ScaleProcs int
	Thousand           int // -thousand: the rows (and -requests) at that many sandboxes; 0: none
	ScaleCPU, ScaleMem string
	// SandboxCPU and SandboxMem size the other rows' sandboxes and pods
	// (-cpu, -memory; "": the plugin's defaults): a real node in a small
	// guest fits few of the default 1 CPU.
	SandboxCPU, SandboxMem string
	ClientQPS              float32
	ClientBurst            int
	CreateTimeout          time.Duration
	timeproc               string   // bench/internal/timeproc, which runs every timed command
	childEnv               []string // environment of every command run
	warmName, kpodName     string   // the long-lived sandbox and kubectl's pod ("" until made)
	payload, smallFiles    string   // cp inputs ("" until made)
	outputsIn              bool     // the cp inputs are in the sandbox and pod too
	startCluster           func(ctx context.Context) error
	// components are the local control plane's processes, for the CPU
	// breakdown (nil on a cluster the bench did not start).
	components []localcluster.Component
}

// ours returns the plugin's command line: subcommand, the bench namespace,
// then args (so that -n never lands after a "--").
func (e *Env) ours(subcommand string, args ...string) []string {
	argv := append([]string{e.Plugin, subcommand, "-n", e.Namespace}, args...)
	flags := e.sized(subcommand, args)
	if i := slices.Index(argv, "--"); i >= 0 && len(flags) > 0 {
		return slices.Concat(argv[:i], flags, argv[i:])
	}
	return append(argv, flags...)
}

// sized is the -cpu and -memory flags for a sandbox that create or run
// makes with the plugin's default size (no --cpu, --memory, --pool or
// --from of its own before a "--"); the pods kubectl makes beside it are
// sized the same (kubectlPod).
func (e *Env) sized(subcommand string, args []string) []string {
	if subcommand != "create" && subcommand != "run" {
		return nil
	}
	if i := slices.Index(args, "--"); i >= 0 {
		args = args[:i]
	}
	for _, a := range args {
		switch a {
		case "--cpu", "--memory", "--pool", "--from":
			return nil
		}
	}
	var flags []string
	if e.SandboxCPU != "" {
		flags = append(flags, "--cpu", e.SandboxCPU)
	}
	if e.SandboxMem != "" {
		flags = append(flags, "--memory", e.SandboxMem)
	}
	return flags
}

// kubectl returns kubectl's command line, as ours does the plugin's.
func (e *Env) kubectl(subcommand string, args ...string) []string {
	return append([]string{e.Kubectl, subcommand, "-n", e.Namespace}, args...)
}

// run starts argv and waits for it, through timeproc (see
// bench/internal/timeproc): wall time from start to exit, and the child's
// peak RSS as wait4 reports it (ru_maxrss, kept across an exec such as
// kubectl's plugin dispatch).
func (e *Env) run(ctx context.Context, stdin []byte, argv ...string) (Sample, error) {
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return Sample{}, err
	}
	defer reportR.Close()
	c := exec.CommandContext(ctx, e.timeproc, argv...)
	c.Env = e.childEnv
	c.ExtraFiles = []*os.File{reportW} // fd 3
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var errOut bytes.Buffer
	c.Stderr = &errOut
	err = c.Start()
	reportW.Close()
	if err != nil {
		return Sample{}, err
	}
	report, readErr := io.ReadAll(reportR)
	if err := c.Wait(); err != nil {
		return Sample{}, fmt.Errorf("%s: %v: %s", strings.Join(append([]string{filepath.Base(argv[0])}, argv[1:]...), " "), err, strings.TrimSpace(errOut.String()))
	}
	var wallNS, maxrssKB int64
	var code int
	if _, err := fmt.Sscan(string(report), &wallNS, &maxrssKB, &code); err != nil || readErr != nil {
		return Sample{}, fmt.Errorf("timeproc reported %q (%v)", report, errors.Join(err, readErr))
	}
	return Sample{Wall: time.Duration(wallNS), PeakRSS: maxrssKB * 1024}, nil
}

// runAll runs each command line in turn, as one sample.
func (e *Env) runAll(ctx context.Context, stdin []byte, argvs ...[]string) (Sample, error) {
	var total Sample
	for _, argv := range argvs {
		s, err := e.run(ctx, stdin, argv...)
		if err != nil {
			return total, err
		}
		total = total.then(s)
	}
	return total, nil
}

// cmdSide is a side that runs one command line per round.
func cmdSide(label string, argv func(e *Env, round int) []string) Side {
	return Side{Label: label, Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
		return e.run(ctx, nil, argv(e, round)...)
	}}
}

// needCluster starts (or connects to) the cluster the first time a row
// needs it, and makes the bench namespace.
func needCluster(ctx context.Context, e *Env) error {
	if e.Clientset != nil {
		return nil
	}
	if e.Kubeconfig == "" {
		if err := e.startCluster(ctx); err != nil {
			return err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = e.ClientQPS, e.ClientBurst
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	e.childEnv = append(e.childEnv, "KUBECONFIG="+e.Kubeconfig)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "agentkernel-bench-", Labels: sandbox.RestrictedNamespaceLabels()}}
	got, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the bench namespace: %w", err)
	}
	e.Namespace = got.Name
	// Pods are refused until the namespace has its default ServiceAccount.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := cs.CoreV1().ServiceAccounts(e.Namespace).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s has no default ServiceAccount after a minute: %w", e.Namespace, err)
		}
	}
	e.Config, e.Clientset = cfg, cs
	return nil
}

// dropNamespace deletes the bench namespace and everything in it.
func (e *Env) dropNamespace(ctx context.Context) {
	if e.Clientset == nil || e.Namespace == "" {
		return
	}
	_ = e.Clientset.CoreV1().Namespaces().Delete(ctx, e.Namespace, metav1.DeleteOptions{})
}

// kubectlPod is the plugin's sandbox Pod as plain YAML for kubectl create:
// the same hardened spec with the network open (kubectl makes no
// NetworkPolicy, so the plugin makes none either in compared rows), under
// labels of its own so the plugin never counts it as a sandbox.
func (e *Env) kubectlPod(name string, labels map[string]string, cpu, memory string) ([]byte, error) {
	spec := sandbox.NewSpec(name, e.Namespace)
	spec.Network = sandbox.NetworkOpen
	if cpu == "" && memory == "" {
		cpu, memory = e.SandboxCPU, e.SandboxMem
	}
	if err := setResources(&spec, cpu, memory); err != nil {
		return nil, err
	}
	pod := spec.Pod()
	pod.Name = name
	pod.Labels = map[string]string{"agentkernel-bench": "kubectl"}
	for k, v := range labels {
		pod.Labels[k] = v
	}
	pod.Annotations = nil
	return yaml.Marshal(pod)
}

// kubectlPods is n kubectlPods, named prefix0..prefix(n-1), as one
// multi-document YAML stream for a single kubectl create -f -.
func (e *Env) kubectlPods(prefix string, n int, labels map[string]string, cpu, memory string) ([]byte, error) {
	var all bytes.Buffer
	for i := range n {
		pod, err := e.kubectlPod(fmt.Sprintf("%s%d", prefix, i), labels, cpu, memory)
		if err != nil {
			return nil, err
		}
		all.WriteString("---\n")
		all.Write(pod)
	}
	return all.Bytes(), nil
}

// kubectlCreateAndWait is kubectl's side of the rows that make many pods:
// n pods named prefix<i> with labels, in one `kubectl create -f -`, then
// `kubectl wait` for those selected to be Ready. start is when the create
// began; the Sample covers both commands. err is a failure before the wait,
// waitErr the wait's own, which each row weighs differently.
func (e *Env) kubectlCreateAndWait(ctx context.Context, prefix string, n int, labels map[string]string, selector string) (s Sample, start time.Time, waitErr, err error) {
	all, err := e.kubectlPods(prefix, n, labels, e.ScaleCPU, e.ScaleMem)
	if err != nil {
		return Sample{}, time.Time{}, nil, err
	}
	start = time.Now()
	if s, err = e.run(ctx, all, e.kubectl("create", "-f", "-")...); err != nil {
		return s, start, nil, err
	}
	waited, waitErr := e.run(ctx, nil, e.kubectl("wait", "--for=condition=Ready", "pod", "-l", selector, "--timeout", e.CreateTimeout.String())...)
	return s.then(waited), start, waitErr, nil
}

// kubectlCreateReady creates the kubectlPod name with kubectl create and
// waits for it with kubectl wait, as a kubectl user makes one Pod.
func (e *Env) kubectlCreateReady(ctx context.Context, name string, labels map[string]string, cpu, memory string) (Sample, error) {
	pod, err := e.kubectlPod(name, labels, cpu, memory)
	if err != nil {
		return Sample{}, err
	}
	created, err := e.run(ctx, pod, e.kubectl("create", "-f", "-")...)
	if err != nil {
		return created, err
	}
	ready, err := e.run(ctx, nil, e.kubectl("wait", "--for=condition=Ready", "pod/"+name, "--timeout=5m")...)
	return created.then(ready), err
}

func setResources(spec *sandbox.Spec, cpu, memory string) error {
	var err error
	if cpu != "" {
		if spec.CPU, err = sandbox.ParseQuantity("--cpu", cpu); err != nil {
			return err
		}
	}
	if memory != "" {
		if spec.Memory, err = sandbox.ParseQuantity("--memory", memory); err != nil {
			return err
		}
	}
	return nil
}

// needWarm makes the long-lived sandbox and kubectl pod that exec, cp and
// list rows work on.
func needWarm(ctx context.Context, e *Env) error {
	if err := needCluster(ctx, e); err != nil {
		return err
	}
	if e.warmName != "" {
		return nil
	}
	if _, err := e.run(ctx, nil, e.ours("create", "warm", "--network", "open")...); err != nil {
		return err
	}
	pod, err := e.kubectlPod("kpod", nil, "", "")
	if err != nil {
		return err
	}
	if _, err := e.runAll(ctx, pod, e.kubectl("create", "-f", "-")); err != nil {
		return err
	}
	if _, err := e.run(ctx, nil, e.kubectl("wait", "--for=condition=Ready", "pod/kpod", "--timeout=5m")...); err != nil {
		return err
	}
	e.warmName, e.kpodName = "warm", "kpod"
	return nil
}

// inSandbox runs a shell command in the long-lived sandbox or kubectl pod
// (not timed: setup, cleanup, checks).
func (e *Env) inSandbox(ctx context.Context, kubectlSide bool, script string) (string, error) {
	argv := e.ours("exec", e.warmName, "--", "sh", "-c", script)
	if kubectlSide {
		argv = e.kubectl("exec", e.kpodName, "--", "sh", "-c", script)
	}
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = e.childEnv
	var errOut bytes.Buffer
	c.Stderr = &errOut
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %v: %s", strings.Join(argv[1:], " "), err, errOut.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// deleteKubectlPods deletes kubectl's pods matching selector and waits
// until they are gone (not timed).
func (e *Env) deleteKubectlPods(ctx context.Context, selector string) error {
	pods := e.Clientset.CoreV1().Pods(e.Namespace)
	if err := pods.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: selector}); err != nil {
		return err
	}
	return waitNone(ctx, e, metav1.ListOptions{LabelSelector: selector})
}

// waitNone waits until no pod matches opts.
func waitNone(ctx context.Context, e *Env, opts metav1.ListOptions) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list, err := e.Clientset.CoreV1().Pods(e.Namespace).List(ctx, opts)
		if err != nil {
			return err
		}
		if len(list.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d pods matching %s%s still there after 5 minutes", len(list.Items), opts.LabelSelector, opts.FieldSelector)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// countRunning counts the pods matching selector that are Running.
func (e *Env) countRunning(ctx context.Context, selector string) (running, total int, err error) {
	list, err := e.Clientset.CoreV1().Pods(e.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, 0, err
	}
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			running++
		}
	}
	return running, len(list.Items), nil
}

// writeFileOnce writes a scratch file the first time it is asked for.
func writeFileOnce(path string, size int, fill func([]byte)) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() == int64(size) {
		return nil
	}
	b := make([]byte, size)
	fill(b)
	return os.WriteFile(path, b, 0o644)
}
