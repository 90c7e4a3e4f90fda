package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/doctor"
	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

// Every command prints through kubectl get's printers: these tests drive
// each one with the -o formats kubectl get has, and check what comes out.

func listPods(t *testing.T) func(genericiooptions.IOStreams) *cobra.Command {
	now := time.Now()
	// beta is the older, and sorts after alpha by name.
	beta := sandboxPod("beta", func(p *corev1.Pod) {
		p.CreationTimestamp = metav1.NewTime(now.Add(-2 * time.Hour))
		p.Labels["team"] = "b"
		p.Spec.NodeName = "node-b"
	})
	alpha := sandboxPod("alpha", func(p *corev1.Pod) {
		p.CreationTimestamp = metav1.NewTime(now.Add(-time.Minute))
		p.Spec.NodeName = "node-a"
	})
	tf := clitest.Factory(t, beta, alpha)
	return func(s genericiooptions.IOStreams) *cobra.Command { return NewCmdList(tf, s) }
}

func TestListPrintsAsKubectlGet(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string // the whole output
	}{
		"name":                      {[]string{"-o", "name"}, "sandbox/alpha\nsandbox/beta\n"},
		"jsonpath":                  {[]string{"-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{"\n"}{end}`}, "agentkernel-alpha node-a\nagentkernel-beta node-b\n"},
		"custom-columns":            {[]string{"-o", "custom-columns=POD:.metadata.name,NODE:.spec.nodeName"}, "POD                 NODE\nagentkernel-alpha   node-a\nagentkernel-beta    node-b\n"},
		"custom-columns no-headers": {[]string{"-o", "custom-columns=POD:.metadata.name", "--no-headers"}, "agentkernel-alpha\nagentkernel-beta\n"},
		"go-template":               {[]string{"-o", `go-template={{range .items}}{{.metadata.name}},{{end}}`}, "agentkernel-alpha,agentkernel-beta,"},
		"sort-by, jsonpath":         {[]string{"--sort-by", ".metadata.creationTimestamp", "-o", `jsonpath={.items[*].metadata.name}`}, "agentkernel-beta agentkernel-alpha"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, _, err := clitest.RunCobra(t, listPods(t), tc.args...)
			if err != nil || out != tc.want {
				t.Fatalf("list %q: err %v\n got %q\nwant %q", tc.args, err, out, tc.want)
			}
		})
	}
}

func TestListTableFlags(t *testing.T) {
	out, _, err := clitest.RunCobra(t, listPods(t), "--no-headers")
	if lines := strings.Split(out, "\n"); err != nil || len(lines) != 3 || !strings.HasPrefix(lines[0], "alpha ") || !strings.HasPrefix(lines[1], "beta ") {
		t.Fatalf("--no-headers: %v\n%s", err, out)
	}
	out, _, err = clitest.RunCobra(t, listPods(t), "--sort-by", "{.metadata.creationTimestamp}")
	if lines := strings.Split(out, "\n"); err != nil || !strings.HasPrefix(lines[0], "NAME ") || !strings.HasPrefix(lines[1], "beta ") || !strings.HasPrefix(lines[2], "alpha ") {
		t.Fatalf("--sort-by on the table: %v\n%s", err, out)
	}
	out, _, err = clitest.RunCobra(t, listPods(t), "--show-labels", "-o", "wide")
	if lines := strings.Split(out, "\n"); err != nil || !strings.HasSuffix(lines[0], " LABELS") || !strings.Contains(lines[0], " NODE ") ||
		!strings.Contains(lines[2], "agentkernel/sandbox=beta") || !strings.Contains(lines[2], "team=b") {
		t.Fatalf("--show-labels -o wide: %v\n%s", err, out)
	}
	out, _, err = clitest.RunCobra(t, listPods(t), "-L", "team")
	if lines := strings.Split(out, "\n"); err != nil || !strings.HasSuffix(lines[0], " TEAM") || !strings.HasSuffix(lines[2], " b") {
		t.Fatalf("-L team: %v\n%s", err, out)
	}
	out, _, err = clitest.RunCobra(t, listPods(t), "-o", "yaml")
	var list corev1.PodList
	if err != nil || yaml.Unmarshal([]byte(out), &list) != nil || list.Kind != "List" || len(list.Items) != 2 || list.Items[0].Kind != "Pod" || list.Items[1].Name != "agentkernel-beta" {
		t.Fatalf("-o yaml: %v\n%s", err, out)
	}
	if _, _, err := clitest.RunCobra(t, listPods(t), "-o", "xml"); err == nil || !strings.HasPrefix(err.Error(), "--output must be json or yaml, or one of ") || !strings.Contains(err.Error(), "custom-columns") {
		t.Fatalf("-o xml: %v", err)
	}
}

func agentsCmd(s genericiooptions.IOStreams) *cobra.Command { return NewCmdAgents(s) }

func TestAgentsPrintsAsKubectlGet(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	file := presetsFile(t, "agents:\n  mine: {image: busybox, command: [sh]}\n")
	out, _, err := clitest.RunCobra(t, agentsCmd, "--agents-file", file, "-o", "name")
	if err != nil || !strings.HasPrefix(out, "agentpreset.agentkernel/aider\nagentpreset.agentkernel/claude\n") || !strings.Contains(out, "\nagentpreset.agentkernel/mine\n") || strings.Count(out, "\n") != 7 {
		t.Fatalf("-o name: %v\n%s", err, out)
	}
	out, _, err = clitest.RunCobra(t, agentsCmd, "--agents-file", file, "-o", "jsonpath={.items[?(@.metadata.name==\"mine\")].image}")
	if err != nil || out != "busybox" {
		t.Fatalf("-o jsonpath: %v %q", err, out)
	}
	out, _, err = clitest.RunCobra(t, agentsCmd, "--agents-file", file, "-o", "custom-columns=NAME:.metadata.name,SOURCE:.source", "--no-headers", "--sort-by", ".image")
	if lines := strings.Split(out, "\n"); err != nil || !strings.HasPrefix(lines[0], "mine ") || !strings.HasSuffix(lines[0], " "+file) {
		t.Fatalf("custom-columns sorted by image (busybox first): %v\n%s", err, out)
	}
	out, _, err = clitest.RunCobra(t, agentsCmd, "--no-headers")
	if err != nil || strings.Contains(out, "NAME") || !strings.HasPrefix(out, "aider ") {
		t.Fatalf("--no-headers: %v\n%s", err, out)
	}
	out, _, err = clitest.RunCobra(t, agentsCmd, "-o", "json")
	var list struct {
		APIVersion, Kind string
		Items            []struct {
			APIVersion, Kind, Name string
			Metadata               struct{ Name string }
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || list.APIVersion != "agentkernel/v1alpha1" || list.Kind != "AgentPresetList" || len(list.Items) != 6 {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	for _, it := range list.Items {
		if it.Kind != "AgentPreset" || it.APIVersion != "agentkernel/v1alpha1" || it.Metadata.Name == "" || it.Metadata.Name != it.Name {
			t.Errorf("item %+v: want kind AgentPreset with metadata.name = name", it)
		}
	}
}

func doctorResults() []doctor.Result {
	return []doctor.Result{
		{Check: "api-server", Status: doctor.OK, Found: "https://k8s answers: Kubernetes v1.37.2"},
		{Check: "resource-quotas", Status: doctor.Fail, Found: `ResourceQuota "q" has no room`, Action: "ask for more quota"},
		{Check: "dns", Status: doctor.Warn, Found: "no kube-dns", Action: "give --dns"},
	}
}

func printDoctorWith(t *testing.T, args ...string) (string, error) {
	t.Helper()
	o := NewDoctorOptions(genericiooptions.NewTestIOStreamsDiscard())
	cmd := &cobra.Command{}
	o.PrintFlags.AddFlags(cmd)
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := printDoctor(&out, o.PrintFlags, "agents", doctorResults())
	return out.String(), err
}

func TestDoctorPrintsAsKubectlGet(t *testing.T) {
	// The default is what doctor printed before it had printers: one line
	// per finding, no header, in tabwriter's columns.
	var want bytes.Buffer
	w := printers.GetNewTabWriter(&want)
	for _, r := range doctorResults() {
		line := r.Found
		if r.Action != "" {
			line += " -> " + r.Action
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.Status, r.Check, line)
	}
	_ = w.Flush()
	for _, args := range [][]string{nil, {"--no-headers"}} {
		if out, err := printDoctorWith(t, args...); err != nil || out != want.String() {
			t.Fatalf("doctor %q:\n got %q\nwant %q (%v)", args, out, want.String(), err)
		}
	}
	cases := map[string]struct {
		args []string
		want string
	}{
		"name":               {[]string{"-o", "name"}, "doctorfinding.agentkernel/api-server\ndoctorfinding.agentkernel/resource-quotas\ndoctorfinding.agentkernel/dns\n"},
		"jsonpath, not ok":   {[]string{"-o", `jsonpath={range .items[?(@.status!="ok")]}{.check}{"\n"}{end}`}, "resource-quotas\ndns\n"},
		"jsonpath, top":      {[]string{"-o", "jsonpath={.namespace} {.failed}"}, "agents 1"},
		"custom-columns":     {[]string{"-o", "custom-columns=CHECK:.check,STATUS:.status"}, "CHECK             STATUS\napi-server        ok\nresource-quotas   fail\ndns               warn\n"},
		"no-headers, sorted": {[]string{"-o", "custom-columns=CHECK:.check", "--no-headers", "--sort-by", ".check"}, "api-server\ndns\nresource-quotas\n"},
		"sorted lines":       {[]string{"--sort-by", ".status"}, ""}, // checked below
	}
	for name, tc := range cases {
		out, err := printDoctorWith(t, tc.args...)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "sorted lines" {
			lines := strings.Split(out, "\n")
			if !strings.HasPrefix(lines[0], "fail ") || !strings.HasPrefix(lines[1], "ok ") || !strings.HasPrefix(lines[2], "warn ") {
				t.Errorf("--sort-by .status:\n%s", out)
			}
			continue
		}
		if out != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", name, out, tc.want)
		}
	}
	out, err := printDoctorWith(t, "-o", "yaml")
	var list struct {
		Kind      string
		Namespace string
		Failed    int
		Items     []struct {
			Kind     string
			Metadata struct{ Name string }
			Check    string
			Status   string
			Action   string
		}
	}
	if err != nil || yaml.Unmarshal([]byte(out), &list) != nil || list.Kind != "DoctorFindingList" || list.Failed != 1 || len(list.Items) != 3 ||
		list.Items[1].Kind != "DoctorFinding" || list.Items[1].Metadata.Name != "resource-quotas" || list.Items[1].Status != "fail" || list.Items[1].Action != "ask for more quota" {
		t.Fatalf("-o yaml: %v\n%s", err, out)
	}
	if _, err := printDoctorWith(t, "-o", "wide"); err == nil || !strings.Contains(err.Error(), `not "wide"`) {
		t.Fatalf("-o wide has no table to widen: %v", err)
	}
}

func TestRBACPrintsAsKubectlGet(t *testing.T) {
	out, errOut, code := runRoot(t, "rbac", "-n", "agents", "--user", "alice", "-o", "name")
	if code != 0 || out != "role.rbac.authorization.k8s.io/agentkernel\nrolebinding.rbac.authorization.k8s.io/agentkernel:user:alice\n"+
		"role.rbac.authorization.k8s.io/agentkernel-dns-reader\nrolebinding.rbac.authorization.k8s.io/agentkernel-dns-reader:user:alice\n" {
		t.Fatalf("-o name: %d %s\n%q", code, errOut, out)
	}
	out, errOut, code = runRoot(t, "rbac", "-n", "agents", "-o", "custom-columns=KIND:.kind,NAMESPACE:.metadata.namespace", "--no-headers")
	if code != 0 || out != "Role   agents\nRole   kube-system\n" {
		t.Fatalf("-o custom-columns: %d %s\n%q", code, errOut, out)
	}
	out, errOut, code = runRoot(t, "rbac", "-n", "agents", "-o", "jsonpath={.kind} {.items[*].metadata.name}")
	if code != 0 || out != "List agentkernel agentkernel-dns-reader" {
		t.Fatalf("-o jsonpath: %d %s\n%q", code, errOut, out)
	}
	out, errOut, code = runRoot(t, "rbac", "-n", "agents", "-o", "json")
	var list struct {
		Kind  string
		Items []struct{ Kind string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || list.Kind != "List" || len(list.Items) != 2 || list.Items[0].Kind != "Role" {
		t.Fatalf("-o json: %d %s\n%s", code, errOut, out)
	}
}

func TestVersionPrintsAsKubectlGet(t *testing.T) {
	info := version.Get()
	cases := map[string]struct {
		args []string
		want string
	}{
		"jsonpath":       {[]string{"-o", "jsonpath={.version}"}, info.Version},
		"custom-columns": {[]string{"-o", "custom-columns=VERSION:.version,PLATFORM:.platform", "--no-headers"}, info.Version + "   " + info.Platform + "\n"},
		"go-template":    {[]string{"-o", "go-template={{.kind}} {{.goVersion}}"}, "Version " + info.GoVersion},
	}
	for name, tc := range cases {
		out, errOut, code := runRoot(t, append([]string{"version"}, tc.args...)...)
		if code != 0 || out != tc.want {
			t.Errorf("%s: %d %s\n got %q\nwant %q", name, code, errOut, out, tc.want)
		}
	}
	out, _, code := runRoot(t, "version", "-o", "yaml")
	var got version.Info
	if code != 0 || yaml.Unmarshal([]byte(out), &got) != nil || got != info || !strings.Contains(out, "kind: Version\n") {
		t.Fatalf("-o yaml: %d\n%s", code, out)
	}
	for _, bad := range []string{"name", "wide"} {
		if _, errOut, code := runRoot(t, "version", "-o", bad); code == 0 || !strings.HasPrefix(errOut, "error: --output must be json or yaml") {
			t.Errorf("-o %s: %d %q", bad, code, errOut)
		}
	}
}
