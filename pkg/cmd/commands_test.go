package cmd

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func runCreate(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	out, _, err := clitest.RunCobra(t, func(streams genericiooptions.IOStreams) *cobra.Command {
		o := NewCreateOptions(streams)
		o.Sandbox.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		return newCmdCreate(clitest.Factory(t), o)
	}, args...)
	return out, err
}

func TestCreateDryRunClientShowsEverythingButSecrets(t *testing.T) {
	out, err := runCreate(t, map[string]string{"API_KEY": "sk-top-secret"},
		"demo", "--dry-run=client", "-o", "yaml", "--secret-env", "API_KEY", "--create-namespace", "--profile", "moderate", "--read-only")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "sk-top-secret") || strings.Contains(out, "c2stdG9wLXNlY3JldA") {
		t.Fatal("the secret value appears in the dry-run output")
	}
	kinds, lists := clitest.ListItems(t, out)
	if got := strings.Join(kinds, ","); got != "Namespace,Secret,NetworkPolicy,Pod" {
		t.Fatalf("kinds = %s", got)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(lists[0].Items[3].Raw, &pod); err != nil {
		t.Fatal(err)
	}
	if !*pod.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem || pod.Annotations[sandbox.AnnotationNetwork] != "egress" {
		t.Fatalf("--read-only did not override moderate, or network is not egress: %+v", pod.Annotations)
	}
}

func TestCreateOutputs(t *testing.T) {
	out, err := runCreate(t, nil, "demo", "--dry-run=client")
	if err != nil || out != "sandbox/demo created (dry run)\n" {
		t.Fatalf("%q %v", out, err)
	}
	out, err = runCreate(t, nil, "demo", "--dry-run=client", "-o", "name")
	if err != nil || out != "sandbox/demo\n" {
		t.Fatalf("%q %v", out, err)
	}
	out, err = runCreate(t, nil, "demo", "--dry-run=client", "--profile", "permissive", "-o", "json")
	if err != nil || strings.Contains(out, "NetworkPolicy") || !strings.Contains(out, `"kind": "Pod"`) {
		t.Fatalf("permissive has no policy: %q %v", out, err)
	}
}

func TestCreateBadInput(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"no name":       {[]string{}, "exactly one sandbox name"},
		"bad name":      {[]string{"My_Box"}, "invalid sandbox name"},
		"long name":     {[]string{strings.Repeat("a", 52)}, "at most 51"},
		"bad memory":    {[]string{"d", "--memory", "lots"}, `--memory "lots" is not a valid quantity`},
		"zero cpu":      {[]string{"d", "--cpu", "0"}, "--cpu"},
		"bad profile":   {[]string{"d", "--profile", "open"}, "unknown profile"},
		"bad network":   {[]string{"d", "--network", "all"}, "unknown network"},
		"root":          {[]string{"d", "--uid", "0"}, "never run as root"},
		"bad env":       {[]string{"d", "--env", "NOVALUE"}, "KEY=VALUE"},
		"bad port":      {[]string{"d", "--port", "99999"}, "--port"},
		"bad pull":      {[]string{"d", "--image-pull-policy", "Sometimes"}, "--image-pull-policy"},
		"unset secret":  {[]string{"d", "--secret-env", "NOT_SET"}, "no such variable in your environment"},
		"bad dry run":   {[]string{"d", "--dry-run=maybe"}, "dry-run"},
		"bad label":     {[]string{"d", "-l", "agentkernel/pool=x"}, "reserved"},
		"bad selector":  {[]string{"d", "--node-selector", "=x"}, "KEY=VALUE"},
		"negative wait": {[]string{"d", "--timeout", "-1s"}, "--timeout"},
		"negative ttl":  {[]string{"d", "--ttl", "-1s"}, "--ttl must be at least 1s"},
		"tiny ttl":      {[]string{"d", "--ttl", "10ms"}, "--ttl must be at least 1s"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := runCreate(t, nil, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// --user is kubectl's kubeconfig user; a number there meant the sandbox's UID.
func TestCreateUserFlagIsKubectls(t *testing.T) {
	streams, _, _, errOut := genericiooptions.NewTestIOStreams()
	if code := Execute(context.Background(), streams, []string{"create", "d", "--user", "1000", "--dry-run=client"}); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if want := "error: --user 1000 is the kubeconfig user to act as (as in kubectl); to run the sandbox as UID 1000, use --uid 1000\n"; errOut.String() != want {
		t.Fatalf("stderr = %q", errOut.String())
	}
}

func TestCreateTTLIsEnforcedByTheCluster(t *testing.T) {
	out, err := runCreate(t, nil, "demo", "--ttl", "90m", "--uid", "4242", "--dry-run=client", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"activeDeadlineSeconds: 5400", "agentkernel/ttl: 1h30m0s", "runAsUser: 4242"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
}

// tarOf writes name/body pairs in order, as tar itself does (parents first).
func tarOf(t *testing.T, pairs ...string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		name, body := pairs[i], pairs[i+1]
		typ := byte(tar.TypeReg)
		if strings.HasSuffix(name, "/") {
			typ = tar.TypeDir
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return buf.Bytes()
}

func runCp(t *testing.T, ex *recordingExecutor, args ...string) error {
	t.Helper()
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	o := NewCpOptions(streams)
	o.Executor = ex
	cmd := newCmdCp(clitest.Factory(t, sandboxPod("demo", nil)), o)
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	return cmd.ExecuteContext(context.Background())
}

func TestCpStreamsThroughExec(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(src, []byte("payload"), 0o600); err != nil {
		t.Fatal(err)
	}
	ex := &recordingExecutor{}
	if err := runCp(t, ex, src, "demo:/workspace/in"); err != nil {
		t.Fatal(err)
	}
	q := ex.urls[0].Query()
	cmd := q["command"]
	if len(cmd) != 7 || cmd[0] != "sh" || cmd[4] != "/workspace/in" || cmd[5] != "notes.txt" || q.Get("stdin") != "true" {
		t.Fatalf("exec = %q (stdin %s)", cmd, q.Get("stdin"))
	}
	tr := tar.NewReader(strings.NewReader(ex.stdins[0]))
	hdr, err := tr.Next()
	if err != nil || hdr.Name != "notes.txt" {
		t.Fatalf("tar header %+v %v", hdr, err)
	}
	if b, _ := io.ReadAll(tr); string(b) != "payload" {
		t.Fatalf("tar body %q", b)
	}

	// Out of the sandbox: the executor plays the sandbox's tar.
	ex = &recordingExecutor{out: string(tarOf(t, "./out/", "", "./out/result.txt", "42"))}
	dest := filepath.Join(dir, "got")
	if err := runCp(t, ex, "demo:out", dest); err != nil {
		t.Fatal(err)
	}
	if cmd := ex.urls[0].Query()["command"]; cmd[4] != "/workspace/" || cmd[5] != "./out" {
		t.Fatalf("archive command %q", cmd)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "result.txt")); err != nil || string(b) != "42" {
		t.Fatalf("copied %q %v", b, err)
	}
}

func TestCpBadInput(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"one arg":      {[]string{"demo:/x"}, "a source and a destination"},
		"both remote":  {[]string{"demo:/x", "demo:/y"}, "both sides are in a sandbox"},
		"both local":   {[]string{"a", "b"}, "neither side is in a sandbox"},
		"missing":      {[]string{"ghost:/x", "."}, `sandbox "ghost" not found`},
		"missing file": {[]string{"/definitely/not/here", "demo:/x"}, "/definitely/not/here"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := runCp(t, &recordingExecutor{}, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDeleteValidate(t *testing.T) {
	cases := map[string]struct {
		o    DeleteOptions
		want string
	}{
		"nothing":       {DeleteOptions{}, "name the sandboxes"},
		"names and all": {DeleteOptions{Names: []string{"a"}, All: true}, "not both"},
		"-A with names": {DeleteOptions{Names: []string{"a"}, AllNamespaces: true}, "-A needs --all"},
		"bad name":      {DeleteOptions{Names: []string{"A"}}, "invalid sandbox name"},
		"bad selector":  {DeleteOptions{Selector: "a in (b"}, "invalid --selector"},
		"bad grace":     {DeleteOptions{Names: []string{"a"}, GracePeriod: -2}, "--grace-period"},
	}
	for name, tc := range cases {
		if err := tc.o.Validate(); err == nil || !strings.Contains(cli.FlagWordsError(err).Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

func TestListTable(t *testing.T) {
	now := time.Now()
	pods := []corev1.Pod{*sandboxPod("one", func(p *corev1.Pod) {
		p.CreationTimestamp = metav1.NewTime(now.Add(-90 * time.Second))
		p.Spec.NodeName = "node-a"
		p.Status.PodIP = "10.1.2.3"
	})}
	var plain, wide bytes.Buffer
	if err := printers.NewTablePrinter(printers.PrintOptions{}).PrintObj(SandboxTable(pods, now), &plain); err != nil {
		t.Fatal(err)
	}
	if err := printers.NewTablePrinter(printers.PrintOptions{Wide: true, WithNamespace: true}).PrintObj(SandboxTable(pods, now), &wide); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NAME", "STATUS", "IMAGE", "PROFILE", "AGE", "one", "Running", sandbox.DefaultImage, "restrictive", "90s"} {
		if !strings.Contains(plain.String(), want) {
			t.Errorf("list lacks %q:\n%s", want, plain.String())
		}
	}
	if strings.Contains(plain.String(), "node-a") {
		t.Error("NODE is a wide column")
	}
	for _, want := range []string{"NAMESPACE", "test", "NODE", "node-a", "IP", "10.1.2.3", "RUNTIME", "<default>"} {
		if !strings.Contains(wide.String(), want) {
			t.Errorf("wide list lacks %q:\n%s", want, wide.String())
		}
	}
}

func TestListValidate(t *testing.T) {
	o := NewListOptions(genericiooptions.NewTestIOStreamsDiscard())
	*o.PrintFlags.OutputFormat = "table"
	if err := o.Validate(); err == nil {
		t.Fatal("unknown output accepted")
	}
}
