package cmd

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

func usageConfigMap(t *testing.T, data map[string]keys.Usage) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: keys.UsageConfigMapName, Namespace: "test"}, Data: map[string]string{}}
	for pod, u := range data {
		b, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		cm.Data[pod] = string(b)
	}
	return cm
}

func runUsage(t *testing.T, cs kubernetes.Interface, args ...string) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewUsageOptions(streams)
	cmd := &cobra.Command{}
	o.PrintFlags.AddFlags(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		return "", "", err
	}
	if rest := cmd.Flags().Args(); len(rest) > 0 {
		o.Name = rest[0]
	}
	o.Clientset, o.Namespace = cs, "test"
	if err := o.Validate(); err != nil {
		return "", "", err
	}
	err := o.Run(context.Background())
	return out.String(), errOut.String(), err
}

var anthropicUse = keys.Usage{Hosts: map[string]keys.HostUsage{
	"api.anthropic.com": {Requests: 12, Refused: 1, BytesSent: 2048, BytesGot: 40 << 10, InputTokens: 30000, OutputTokens: 4500},
}}

func TestUsage(t *testing.T) {
	pod := sandboxPod("claude", nil)
	cm := usageConfigMap(t, map[string]keys.Usage{pod.Name: anthropicUse, "agentkernel-old": anthropicUse})
	cm.Data["agentkernel-broken"] = "{not json"
	cs := fakecluster.New(pod, cm)

	out, _, err := runUsage(t, cs)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "SANDBOX") || !strings.Contains(lines[0], "INPUT-TOKENS") {
		t.Fatalf("table:\n%s", out)
	}
	for _, want := range []string{"claude ", "api.anthropic.com", "12", "2048B", "40Ki", "30000", "4500", "agentkernel-old (gone)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "broken") {
		t.Errorf("an entry that does not parse is shown:\n%s", out)
	}

	out, _, err = runUsage(t, cs, "claude", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Kind        string `json:"kind"`
			Sandbox     string `json:"sandbox"`
			Host        string `json:"host"`
			Requests    int64  `json:"requests"`
			InputTokens int64  `json:"inputTokens"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(list.Items) != 1 || list.Items[0].Sandbox != "claude" || list.Items[0].Requests != 12 || list.Items[0].InputTokens != 30000 || list.Items[0].Kind != "SandboxUsage" {
		t.Fatalf("json: %+v", list)
	}
	if out, _, err = runUsage(t, cs, "-o", "yaml"); err != nil || !strings.Contains(out, "outputTokens: 4500") {
		t.Fatalf("yaml: %v\n%s", err, out)
	}
}

func TestUsageNothingRecorded(t *testing.T) {
	_, _, err := runUsage(t, fakecluster.New())
	if err == nil || !strings.Contains(err.Error(), `no usage recorded in namespace "test"`) {
		t.Fatalf("no ConfigMap: %v", err)
	}
	_, errOut, err := runUsage(t, fakecluster.New(usageConfigMap(t, nil)))
	if err != nil || !strings.Contains(errOut, `No model API use recorded for namespace "test"`) {
		t.Fatalf("empty: %v %q", err, errOut)
	}
	_, _, err = runUsage(t, fakecluster.New(usageConfigMap(t, nil)), "nosuch")
	if err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("unknown sandbox: %v", err)
	}
	if _, _, err := runUsage(t, fakecluster.New(), "-o", "wide2"); err == nil {
		t.Fatal("a bad -o passed")
	}
}

func TestListWideModelUse(t *testing.T) {
	pod := sandboxPod("claude", nil)
	other := sandboxPod("plain", nil)
	cs := fakecluster.New(pod, other, usageConfigMap(t, map[string]keys.Usage{pod.Name: anthropicUse}))
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := NewListOptions(streams)
	cmd := &cobra.Command{}
	o.PrintFlags.AddFlags(cmd)
	if err := cmd.ParseFlags([]string{"-o", "wide"}); err != nil {
		t.Fatal(err)
	}
	o.Clientset, o.Namespace = cs, "test"
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.HasSuffix(strings.TrimSpace(lines[0]), "MODEL-USE") || !strings.HasSuffix(lines[1], "12 req 34k tok") || !strings.HasSuffix(lines[2], "<none>") {
		t.Fatalf("wide:\n%s", out.String())
	}
	reads := 0
	for _, a := range cs.Actions() {
		if a.GetResource().Resource == "configmaps" {
			reads++
		}
	}
	if reads != 1 {
		t.Errorf("%d reads of the usage ConfigMap", reads)
	}
}
