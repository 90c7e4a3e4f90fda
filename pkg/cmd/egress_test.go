package cmd

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

func listItems(t *testing.T, out string) ([]string, []corev1.List) {
	t.Helper()
	var list corev1.List
	if err := yaml.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var kinds []string
	for _, item := range list.Items {
		var m metav1.TypeMeta
		if err := yaml.Unmarshal(item.Raw, &m); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, m.Kind)
	}
	return kinds, []corev1.List{list}
}

func TestCreateAllowHostDryRun(t *testing.T) {
	out, err := runCreate(t, nil, "claude", "--dry-run=client", "-o", "yaml", "--profile", "moderate",
		"--allow-host", "API.anthropic.com", "--allow-host", "*.npmjs.org", "--allow-host", "api.anthropic.com:443")
	if err != nil {
		t.Fatal(err)
	}
	kinds, lists := listItems(t, out)
	if strings.Join(kinds, ",") != "NetworkPolicy,Pod" {
		t.Fatalf("kinds = %v", kinds)
	}
	var np networkingv1.NetworkPolicy
	if err := yaml.Unmarshal(lists[0].Items[0].Raw, &np); err != nil {
		t.Fatal(err)
	}
	// The profile's internet egress is gone: only the proxy remains.
	if len(np.Spec.Egress) != 1 || np.Spec.Egress[0].To[0].PodSelector == nil ||
		np.Spec.Egress[0].To[0].PodSelector.MatchLabels[fence.LabelComponent] != fence.ComponentEgressProxy {
		t.Fatalf("egress rules: %+v", np.Spec.Egress)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(lists[0].Items[1].Raw, &pod); err != nil {
		t.Fatal(err)
	}
	if got := pod.Annotations[fence.AnnotationAllowHosts]; got != `["api.anthropic.com:443","*.npmjs.org:443"]` {
		t.Errorf("grants = %s", got)
	}
	if pod.Annotations[sandbox.AnnotationNetwork] != string(sandbox.NetworkNone) {
		t.Errorf("network annotation = %s", pod.Annotations[sandbox.AnnotationNetwork])
	}
	// No proxy in the (fake) cluster yet: the dry run names its Service.
	found := false
	for _, e := range pod.Spec.Containers[0].Env {
		if e.Name == "HTTPS_PROXY" {
			found = e.Value == "http://agentkernel-egress.test.svc:3128"
		}
	}
	if !found {
		t.Errorf("HTTPS_PROXY missing or wrong: %+v", pod.Spec.Containers[0].Env)
	}
}

func TestCreateAllowHostErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--allow-host", "example.com", "--network", "egress"}, "cannot be combined with --network egress"},
		{[]string{"--allow-host", "example.com", "--network", "open"}, "cannot be combined with --network open"},
		{[]string{"--allow-host", "exa mple.com"}, `--allow-host "exa mple.com"`},
		{[]string{"--allow-host", "169.254.169.254"}, "never connects there"},
		{[]string{"--allow-host", "*.com"}, "top-level domain"},
	} {
		_, err := runCreate(t, nil, append([]string{"demo", "--dry-run=client"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// --network none is what --allow-host means anyway.
	if _, err := runCreate(t, nil, "demo", "--dry-run=client", "--allow-host", "example.com", "--network", "none"); err != nil {
		t.Errorf("--allow-host with --network none: %v", err)
	}
}

func runCommand(t *testing.T, cmd func(genericiooptions.IOStreams) *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	c := cmd(streams)
	c.SetArgs(args)
	c.SetOut(io.Discard)
	c.SetErr(io.Discard)
	err := c.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestEgressInstallDryRun(t *testing.T) {
	tf := clitest.Factory(t)
	out, _, err := runCommand(t, func(s genericiooptions.IOStreams) *cobra.Command { return NewCmdEgressInstall(tf, s) },
		"--dry-run=client", "-o", "yaml", "--private-cidr", "10.20.0.0/16", "--api-server", "10.0.0.1:443", "--replicas", "2")
	if err != nil {
		t.Fatal(err)
	}
	kinds, lists := listItems(t, out)
	if strings.Join(kinds, ",") != "NetworkPolicy,ServiceAccount,Role,RoleBinding,Service,Deployment" {
		t.Fatalf("kinds = %v", kinds)
	}
	var dep appsv1.Deployment
	if err := yaml.Unmarshal(lists[0].Items[5].Raw, &dep); err != nil {
		t.Fatal(err)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != egress.DefaultImage() || *dep.Spec.Replicas != 2 || dep.Namespace != "test" ||
		strings.Join(c.Args, " ") != "egress-proxy --namespace=test --listen=:3128 --private-cidr=10.20.0.0/16" {
		t.Fatalf("deployment: image %s, replicas %d, namespace %s, args %v", c.Image, *dep.Spec.Replicas, dep.Namespace, c.Args)
	}
	out, _, err = runCommand(t, func(s genericiooptions.IOStreams) *cobra.Command { return NewCmdEgressInstall(tf, s) }, "--dry-run=client")
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
		_, _, err := runCommand(t, func(s genericiooptions.IOStreams) *cobra.Command { return NewCmdEgressInstall(tf, s) }, append([]string{"--dry-run=client"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("egress install %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestEgressProxyRefusesBadFlags(t *testing.T) {
	tf := clitest.Factory(t)
	_, _, err := runCommand(t, func(s genericiooptions.IOStreams) *cobra.Command { return NewCmdEgressProxy(tf, s) }, "--private-cidr", "169.254.0.0/16")
	if err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Fatalf("egress-proxy --private-cidr 169.254.0.0/16: %v", err)
	}
}

func TestEgressProxyIsHidden(t *testing.T) {
	root := NewCmdRoot(genericiooptions.NewTestIOStreamsDiscard())
	for _, c := range root.Commands() {
		if c.Name() == "egress-proxy" && !c.Hidden {
			t.Fatal("egress-proxy shows in help")
		}
	}
}
