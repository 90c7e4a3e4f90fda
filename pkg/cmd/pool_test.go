package cmd

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// runCreateOn runs create against a fake clientset holding objects.
func runCreateOn(t *testing.T, cs *fake.Clientset, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewCreateOptions(streams)
	o.Sandbox.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tf := clitest.Factory(t)
	cmd := newCmdCreate(tf, o)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.ParseFlags(args); err != nil {
		return "", "", err
	}
	err := o.Complete(tf, cmd, cmd.Flags().Args())
	if err == nil {
		o.Clientset = cs
		if err = o.Validate(); err == nil {
			err = o.Run(context.Background())
		}
	}
	return out.String(), errOut.String(), cli.FlagWordsError(err) // as the command's RunE says it
}

func testPool(t *testing.T, name string, mutate func(*sandbox.Spec)) *corev1.PodTemplate {
	t.Helper()
	spec := sandbox.NewSpec(name, "test")
	if mutate != nil {
		mutate(&spec)
	}
	p, err := pool.NewPool(name, spec, 2)
	if err != nil {
		t.Fatal(err)
	}
	return p.PodTemplate()
}

// create --pool --dry-run shows the pool's sandbox with the claim's own
// fields, and no secret value.
func TestCreatePoolDryRunHidesSecrets(t *testing.T) {
	const secret = "sk-claim-secret"
	cs := fake.NewClientset(testPool(t, "py", func(s *sandbox.Spec) { s.Image = "python:3.12" }))
	out, _, err := runCreateOn(t, cs, map[string]string{"API_KEY": secret},
		"task", "--pool", "py", "--secret-env", "API_KEY", "--env", "MODE=x", "--ttl", "1h", "--dry-run=client", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, secret) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(secret))) {
		t.Fatalf("the secret value is in the dry-run output:\n%s", out)
	}
	for _, want := range []string{"image: python:3.12", "API_KEY: <redacted>", "name: MODE", "activeDeadlineSeconds: 3600"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if len(cs.Actions()) != 1 || cs.Actions()[0].GetVerb() != "get" {
		t.Fatalf("a client dry run only reads the pool: %v", cs.Actions())
	}
	out, _, err = runCreateOn(t, cs, nil, "task", "--pool", "py", "--dry-run=client")
	if err != nil || out != "sandbox/task created (dry run: as claimed from pool py)\n" {
		t.Fatalf("%q %v", out, err)
	}
}

func TestCreatePoolRefusals(t *testing.T) {
	cs := fake.NewClientset(testPool(t, "py", func(s *sandbox.Spec) { s.Image = "python:3.12" }))
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"other image":      {[]string{"t", "--pool", "py", "--image", "node:22", "--dry-run=client"}, `--image: the pool has "python:3.12", the claim asks for "node:22"`},
		"missing pool":     {[]string{"t", "--pool", "nope", "--dry-run=client"}, `pool "nope" not found`},
		"bad pool name":    {[]string{"t", "--pool", "Bad_Pool"}, "invalid pool name"},
		"wait needs pool":  {[]string{"t", "--pool-wait"}, "--pool-wait needs --pool"},
		"create namespace": {[]string{"t", "--pool", "py", "--create-namespace"}, "--create-namespace cannot be used with --pool"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := runCreateOn(t, cs, nil, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestListShowsExpires(t *testing.T) {
	now := time.Now()
	pods := []corev1.Pod{
		*sandboxPod("ttl", func(p *corev1.Pod) {
			p.Spec.ActiveDeadlineSeconds = ptr.To[int64](3600)
			p.Status.StartTime = &metav1.Time{Time: now.Add(-30 * time.Minute)}
		}),
		*sandboxPod("gone", func(p *corev1.Pod) {
			p.Spec.ActiveDeadlineSeconds = ptr.To[int64](60)
			p.Status.Phase, p.Status.Reason = corev1.PodFailed, "DeadlineExceeded"
		}),
		*sandboxPod("forever", nil),
	}
	var out bytes.Buffer
	if err := printers.NewTablePrinter(printers.PrintOptions{}).PrintObj(SandboxTable(pods, now), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	for i, want := range []string{"EXPIRES", "in 30m", "expired", "<none>"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d lacks %q: %q", i, want, lines[i])
		}
	}
}
