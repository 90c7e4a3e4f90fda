package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/version"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/doctor"
)

func TestPrintDoctor(t *testing.T) {
	results := []doctor.Result{
		{Check: "api-server", Status: doctor.OK, Found: "https://k8s answers: Kubernetes v1.37.2"},
		{Check: "resource-quotas", Status: doctor.Fail, Found: `ResourceQuota "q" has no room`, Action: "ask for more quota"},
	}
	var text bytes.Buffer
	if err := printDoctor(&text, cli.NewPrintFlags("", cli.WithSort), "agents", results); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ok ") || !strings.HasPrefix(lines[1], "fail ") ||
		!strings.HasSuffix(lines[1], `ResourceQuota "q" has no room -> ask for more quota`) {
		t.Errorf("one line per finding, status first, then what to do:\n%s", text.String())
	}
	var js bytes.Buffer
	pf := cli.NewPrintFlags("", cli.WithSort)
	*pf.OutputFormat = "json"
	if err := printDoctor(&js, pf, "agents", results); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Kind      string
		Namespace string
		Failed    int
		Items     []doctor.Result
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil || got.Kind != "DoctorFindingList" || got.Namespace != "agents" || got.Failed != 1 || len(got.Items) != 2 || got.Items[1].Action != "ask for more quota" {
		t.Errorf("json: %+v %v\n%s", got, err, js.String())
	}
}

func TestDoctorFailsWhenACheckFails(t *testing.T) {
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := NewDoctorOptions(streams)
	// No namespace object: the namespace check fails; nothing else is needed.
	o.env = doctor.Env{Clientset: fakeDoctorCluster(), Namespace: "nowhere", Server: "https://k8s"}
	err := o.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "findings failed") || !strings.Contains(out.String(), `namespace "nowhere" does not exist`) {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
}

func TestDoctorValidate(t *testing.T) {
	o := NewDoctorOptions(genericiooptions.NewTestIOStreamsDiscard())
	*o.PrintFlags.OutputFormat = "xml"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--output must be json") {
		t.Errorf("-o xml: %v", err)
	}
	*o.PrintFlags.OutputFormat, o.Timeout = "", 0
	if err := o.Validate(); err == nil {
		t.Error("a zero probe timeout was accepted")
	}
}

func fakeDoctorCluster() *fake.Clientset {
	cs := fake.NewClientset()
	cs.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: "v1.37.2"}
	return cs
}
