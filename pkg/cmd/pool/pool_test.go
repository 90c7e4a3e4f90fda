package pool

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func runPoolCmd(t *testing.T, args ...string) error {
	t.Helper()
	_, _, err := clitest.RunCobra(t, func(streams genericiooptions.IOStreams) *cobra.Command {
		return NewCmdPool(clitest.Factory(t), streams)
	}, args...)
	return err
}

func TestPoolBadInput(t *testing.T) {
	t.Setenv("POOL_SECRET", "v")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no subcommand":      {[]string{}, "pool needs a subcommand"},
		"no size":            {[]string{"create", "p"}, `"size" not set`},
		"size 0":             {[]string{"create", "p", "--size", "0"}, "--size must be at least 1"},
		"negative size":      {[]string{"create", "p", "--size", "-3"}, "--size must not be negative"},
		"huge size":          {[]string{"create", "p", "--size", "100000"}, "more than 1000"},
		"no name":            {[]string{"create", "--size", "1"}, "exactly one pool name"},
		"bad name":           {[]string{"create", "P!", "--size", "1"}, "invalid pool name"},
		"reserved name":      {[]string{"create", "active", "--size", "1"}, "reserved"},
		"secret":             {[]string{"create", "p", "--size", "1", "--secret-env", "POOL_SECRET"}, "--secret-env belongs to a claim"},
		"bad image flag":     {[]string{"create", "p", "--size", "1", "--memory", "lots"}, "not a valid quantity"},
		"bad idle":           {[]string{"create", "p", "--size", "1", "--idle-timeout", "10ms"}, "--idle-timeout must be at least 1s"},
		"scale negative":     {[]string{"scale", "p", "--size", "-1"}, "--size must not be negative"},
		"scale no size":      {[]string{"scale", "p"}, `"size" not set`},
		"delete nothing":     {[]string{"delete"}, "name the pools to delete"},
		"delete bad name":    {[]string{"delete", "x_y"}, "invalid pool name"},
		"class, no persist":  {[]string{"create", "p", "--size", "1", "--storage-class", "fast"}, "--storage-class needs --persist"},
		"retain, no persist": {[]string{"create", "p", "--size", "1", "--retain", "1h"}, "--retain needs --persist"},
		"persist 0":          {[]string{"create", "p", "--size", "1", "--persist=0"}, `--persist "0" must be greater than zero`},
	} {
		t.Run(name, func(t *testing.T) {
			err := runPoolCmd(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPoolCreateDryRunShowsThePodTemplate(t *testing.T) {
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	cmd := NewCmdPool(clitest.Factory(t), streams)
	cmd.SetArgs([]string{"create", "agents", "--size", "3", "--image", "node:22", "--ttl", "2h", "--dry-run=client", "-o", "yaml"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: PodTemplate", "name: agentkernel-pool-agents", "agentkernel/pool-size: \"3\"", "image: node:22", "restartPolicy: Never"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "activeDeadlineSeconds") {
		t.Error("warm members must not carry the claims' TTL")
	}
}

func TestPoolTable(t *testing.T) {
	now := time.Now()
	spec := sandbox.NewSpec("p", "test")
	spec.TTL = time.Hour
	p, _ := pool.NewPool("agents", spec, 4)
	p.CreationTimestamp = metav1.NewTime(now.Add(-2 * time.Minute))
	st := &pool.PoolStatus{Pool: p, Ready: 2, Starting: 2, Claimed: 5, Problems: []string{"2 × ErrImagePull: 429 Too Many Requests"}}
	var plain, wide bytes.Buffer
	if err := printers.NewTablePrinter(printers.PrintOptions{}).PrintObj(PoolTable([]*pool.PoolStatus{st}, now), &plain); err != nil {
		t.Fatal(err)
	}
	if err := printers.NewTablePrinter(printers.PrintOptions{Wide: true}).PrintObj(PoolTable([]*pool.PoolStatus{st}, now), &wide); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NAME", "SIZE", "READY", "STARTING", "CLAIMED", "agents", "4", "2", "5", "2m", "2 × ErrImagePull: 429 Too Many Requests"} {
		if !strings.Contains(plain.String(), want) {
			t.Errorf("pool list lacks %q:\n%s", want, plain.String())
		}
	}
	if !strings.Contains(wide.String(), "1h0m0s") || strings.Contains(plain.String(), "1h0m0s") {
		t.Errorf("TTL is a wide column:\n%s\n%s", plain.String(), wide.String())
	}
	obj := poolObject(st)
	if obj.GetKind() != "Pool" || obj.Object["status"].(map[string]any)["ready"] != int64(2) {
		t.Fatalf("-o json object %v", obj.Object)
	}
}

// pool create --agent takes the preset's shape without its credentials:
// they belong to each claim, and the caller need not have them.
func TestPoolCreateAgentNeedsNoCredentials(t *testing.T) {
	presets := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(presets, []byte(clitest.Presets), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOOL_KEY", "") // set or not: never the pool's
	os.Unsetenv("TOOL_KEY")
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	cmd := NewCmdPool(clitest.Factory(t), streams)
	cmd.SetArgs([]string{"create", "tools", "--size", "1", "--agent", "tool", "--agents-file", presets, "--dry-run=client", "-o", "yaml"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"image: example.org/tool:1", "agentkernel/agent: tool", "name: TOOL_MODE", `"Agent":"tool"`,
		`"WarmInstall":"install-the-tool"`, "startupProbe:", "- install-the-tool", "periodSeconds: 5", "failureThreshold: 360"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "TOOL_KEY") {
		t.Errorf("the pool names the preset's credential:\n%s", out.String())
	}
}

func TestPoolListPrintsAsKubectlGet(t *testing.T) {
	cs := fake.NewClientset()
	for _, p := range []struct {
		name string
		size int
	}{{"beta", 1}, {"alpha", 2}} {
		def, err := pool.NewPool(p.name, sandbox.NewSpec(p.name, "test"), p.size)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().PodTemplates("test").Create(context.Background(), def.PodTemplate(), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poolList := func(s genericiooptions.IOStreams) *cobra.Command {
		o := NewPoolListOptions(s)
		o.Clients = cli.Clients{Clientset: cs, Namespace: "test"}
		o.NoReconcile = true
		cmd := &cobra.Command{RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		}}
		o.PrintFlags.AddFlags(cmd)
		return cmd
	}
	out, _, err := clitest.RunCobra(t, poolList, "-o", "custom-columns=POOL:.metadata.name,SIZE:.spec.size", "--no-headers", "--sort-by", ".spec.size")
	if err != nil || out != "beta    1\nalpha   2\n" {
		t.Fatalf("-o custom-columns --sort-by: %v %q", err, out)
	}
	out, _, err = clitest.RunCobra(t, poolList, "--sort-by", ".metadata.name", "--no-headers")
	if err != nil || !strings.HasPrefix(out, "alpha ") || !strings.Contains(out, "\nbeta ") {
		t.Fatalf("table sorted by name: %v\n%s", err, out)
	}
	if _, _, err := clitest.RunCobra(t, poolList, "-o", "xml"); err == nil || !strings.HasPrefix(err.Error(), "--output must be ") {
		t.Fatalf("-o xml: %v", err)
	}
}

// A persistent pool's definition carries its workspace; each member's
// workspace is its own, so the template names none of them.
func TestPoolCreatePersistDryRun(t *testing.T) {
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	cmd := NewCmdPool(clitest.Factory(t), streams)
	cmd.SetArgs([]string{"create", "kept", "--size", "2", "--persist=3Gi", "--storage-class", "fast", "--retain", "48h", "--dry-run=client", "-o", "yaml"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Workspace":{"size":"3Gi","storageClass":"fast","retain":172800000000000}`, "persistentVolumeClaim:", "claimName: agentkernel-pool-kept-member"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, out.String())
		}
	}
}

// A member installs the agent while it warms up unless the preset's image
// has it; fenced by host name too (the egress proxy grants an unclaimed
// member its pool's hosts).
func TestPoolCreateWarmInstallOnlyWhereItCanRun(t *testing.T) {
	presets := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(presets, []byte(clitest.Presets+`  inimage:
    image: example.org/has-it:1
    command: [has-it]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		warm bool
		note string
	}{
		"install":    {[]string{"--agent", "tool"}, true, ""},
		"in image":   {[]string{"--agent", "inimage"}, false, ""},
		"allow-host": {[]string{"--agent", "tool", "--allow-host", "registry.example.org"}, true, ""},
	} {
		t.Run(name, func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			cmd := NewCmdPool(clitest.Factory(t), streams)
			cmd.SetArgs(append([]string{"create", "tools", "--size", "1", "--agents-file", presets, "--dry-run=client", "-o", "yaml"}, tc.args...))
			if err := cmd.ExecuteContext(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(out.String(), "startupProbe:"); got != tc.warm {
				t.Errorf("warm install %v, want %v:\n%s", got, tc.warm, out.String())
			}
			if errOut.String() != tc.note {
				t.Errorf("stderr %q, want %q", errOut.String(), tc.note)
			}
		})
	}
}
