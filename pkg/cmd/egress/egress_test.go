package egress

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
)

func TestEgressInstallDryRun(t *testing.T) {
	tf := clitest.Factory(t)
	out, _, err := clitest.RunCobra(t, func(s genericiooptions.IOStreams) *cobra.Command { return NewCmdEgressInstall(tf, s) },
		"--dry-run=client", "-o", "yaml", "--private-cidr", "10.20.0.0/16", "--api-server", "10.0.0.1:443", "--replicas", "2")
	if err != nil {
		t.Fatal(err)
	}
	kinds, lists := clitest.ListItems(t, out)
	if strings.Join(kinds, ",") != "NetworkPolicy,ServiceAccount,Role,RoleBinding,Secret,ConfigMap,Service,Deployment" {
		t.Fatalf("kinds = %v", kinds)
	}
	var dep appsv1.Deployment
	if err := yaml.Unmarshal(lists[0].Items[7].Raw, &dep); err != nil {
		t.Fatal(err)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != egress.DefaultImage() || *dep.Spec.Replicas != 2 || dep.Namespace != "test" ||
		strings.Join(c.Args, " ") != "egress-proxy --namespace=test --listen=:3128 --private-cidr=10.20.0.0/16" {
		t.Fatalf("deployment: image %s, replicas %d, namespace %s, args %v", c.Image, *dep.Spec.Replicas, dep.Namespace, c.Args)
	}
	out, _, err = clitest.RunCobra(t, func(s genericiooptions.IOStreams) *cobra.Command { return NewCmdEgressInstall(tf, s) }, "--dry-run=client")
	if err != nil || out != "egress proxy installed in namespace test (dry run)\n" {
		t.Fatalf("%q %v", out, err)
	}
}

func TestEgressInstallErrors(t *testing.T) {
	tf := clitest.Factory(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--private-cidr", "127.0.0.0/8"}, "loopback"},
		{[]string{"--private-cidr", "8.8.8.0/24"}, "public addresses only"},
		{[]string{"--private-cidr", "10.0.0.1/8"}, "did you mean 10.0.0.0/8"},
		{[]string{"--api-server", "10.0.0.1"}, "expected IP:PORT"},
		{[]string{"--api-server", "kubernetes:443"}, "expected IP:PORT"},
		{[]string{"--replicas", "0"}, "--replicas must be at least 1"},
		{[]string{"--image", ""}, "--image must not be empty"},
		{[]string{"extra"}, "unknown command"},
	} {
		_, _, err := clitest.RunCobra(t, func(s genericiooptions.IOStreams) *cobra.Command { return NewCmdEgressInstall(tf, s) }, append([]string{"--dry-run=client"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("egress install %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestEgressProxyRefusesBadFlags(t *testing.T) {
	tf := clitest.Factory(t)
	_, _, err := clitest.RunCobra(t, func(s genericiooptions.IOStreams) *cobra.Command { return NewCmdEgressProxy(tf, s) }, "--private-cidr", "169.254.0.0/16")
	if err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Fatalf("egress-proxy --private-cidr 169.254.0.0/16: %v", err)
	}
}

func TestEgressStatusPrintsAsKubectlGet(t *testing.T) {
	// Nothing installed in namespace test.
	egressStatus := func(s genericiooptions.IOStreams) *cobra.Command {
		o := &EgressStatusOptions{PrintFlags: cli.NewPrintFlags("", cli.WithoutName), IOStreams: s}
		o.Clients = cli.Clients{Clientset: fake.NewClientset(), Namespace: "test"}
		cmd := &cobra.Command{RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.PrintFlags.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		}}
		o.PrintFlags.AddFlags(cmd)
		return cmd
	}
	out, _, err := clitest.RunCobra(t, egressStatus, "-o", "jsonpath={.kind} {.namespace} {.installed} {.missing[0]}")
	if err != nil || out != "EgressStatus test false deployment/agentkernel-egress" {
		t.Fatalf("-o jsonpath: %v %q", err, out)
	}
	out, _, err = clitest.RunCobra(t, egressStatus, "-o", "custom-columns=NAMESPACE:.namespace,INSTALLED:.installed")
	if err != nil || out != "NAMESPACE   INSTALLED\ntest        false\n" {
		t.Fatalf("-o custom-columns: %v %q", err, out)
	}
	out, _, err = clitest.RunCobra(t, egressStatus, "-o", "json")
	var st struct {
		APIVersion, Kind, Namespace string
		Installed                   bool
		Sandboxes                   []string
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.APIVersion != "agentkernel/v1" || st.Kind != "EgressStatus" || st.Namespace != "test" || st.Installed {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	out, _, err = clitest.RunCobra(t, egressStatus)
	if err != nil || !strings.HasPrefix(out, "no egress proxy in namespace test;") {
		t.Fatalf("default: %v\n%s", err, out)
	}
}
