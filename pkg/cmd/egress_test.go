package cmd

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

func TestCreateAllowHostDryRun(t *testing.T) {
	out, err := runCreate(t, nil, "claude", "--dry-run=client", "-o", "yaml", "--profile", "moderate",
		"--allow-host", "API.anthropic.com", "--allow-host", "*.npmjs.org", "--allow-host", "api.anthropic.com:443")
	if err != nil {
		t.Fatal(err)
	}
	kinds, lists := clitest.ListItems(t, out)
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

func TestEgressProxyIsHidden(t *testing.T) {
	root := NewCmdRoot(genericiooptions.NewTestIOStreamsDiscard())
	for _, c := range root.Commands() {
		if c.Name() == "egress-proxy" && !c.Hidden {
			t.Fatal("egress-proxy shows in help")
		}
	}
}
