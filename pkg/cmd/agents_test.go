package cmd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
)

// presetList is the shape of agents -o yaml|json that scripts read.
type presetList struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Items      []*agents.Preset `json:"items"`
}

func runAgents(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := clitest.RunCobra(t, NewCmdAgents, args...)
	return out, err
}

func presetsFile(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAgentsListsPresetsAndWhereTheyCameFrom(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no user file of the machine's
	out, err := runAgents(t)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "SOURCE") {
		t.Fatalf("header: %q", lines[0])
	}
	for _, name := range []string{"aider", "claude", "codex", "gemini", "goose", "opencode"} {
		if !strings.Contains(out, "\n"+name+" ") {
			t.Errorf("%s missing:\n%s", name, out)
		}
	}
	file := presetsFile(t, "agents:\n  mine: {image: busybox, command: [sh]}\n  claude: {memory: 8Gi}\n")
	out, err = runAgents(t, "--agents-file", file, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mine", file, "embedded, overridden by " + file, "one of ANTHROPIC_API_KEY|CLAUDE_CODE_OAUTH_TOKEN", "docker.io/paulgauthier/aider"} {
		if !strings.Contains(out, want) {
			t.Errorf("wide table lacks %q:\n%s", want, out)
		}
	}
	out, err = runAgents(t, "--agents-file", file, "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	var list presetList
	if err := yaml.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*agents.Preset{}
	for _, p := range list.Items {
		byName[p.Name] = p
	}
	if list.Kind != "AgentPresetList" || len(list.Items) != 7 || byName["claude"].Memory != "8Gi" || byName["mine"].Source != file {
		t.Fatalf("yaml: %s", out)
	}
	if _, err := runAgents(t, "-o", "json"); err != nil {
		t.Fatal(err)
	}
}

func TestAgentsBadInput(t *testing.T) {
	bad := presetsFile(t, "agents:\n  claude:\n    memry: 8Gi\n")
	if _, err := runAgents(t, "--agents-file", bad); err == nil || err.Error() != bad+":3: agents.claude.memry: unknown field; a preset has command, cpu, credentials, description, env, ephemeralStorage, hosts, image, inject, install, memory, network, persist, profile, readOnly, retain, storageClass" {
		t.Fatalf("bad file: %v", err)
	}
	if _, err := runAgents(t, "--agents-file", "/no/such/file.yaml"); err == nil || !strings.Contains(err.Error(), "/no/such/file.yaml") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := runAgents(t, "-o", "xml"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("bad output: %v", err)
	}
}

// dryRunPod runs create --dry-run=client -o yaml and returns the Pod and
// the whole output.
func dryRunPod(t *testing.T, env map[string]string, args ...string) (*corev1.Pod, string, error) {
	t.Helper()
	out, err := runCreate(t, env, append([]string{"--dry-run=client", "-o", "yaml"}, args...)...) // flags before any "--"
	if err != nil {
		return nil, out, err
	}
	var list corev1.List
	if err := yaml.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(list.Items[len(list.Items)-1].Raw, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod, out, nil
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestCreateWithAnAgentPreset(t *testing.T) {
	file := presetsFile(t, clitest.Presets)
	pod, out, err := dryRunPod(t, map[string]string{"TOOL_KEY": "sk-tool-secret"}, "demo", "--agents-file", file, "--agent", "tool")
	if err != nil {
		t.Fatal(err)
	}
	c := pod.Spec.Containers[0]
	if c.Image != "example.org/tool:1" || envOf(c)["TOOL_MODE"] != "fast" || len(c.EnvFrom) != 1 || *c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("preset not applied: image %s env %v envFrom %v", c.Image, c.Env, c.EnvFrom)
	}
	if !strings.Contains(out, "TOOL_KEY: <redacted>") || strings.Contains(out, "sk-tool-secret") {
		t.Errorf("the credential is not (only) in the redacted Secret:\n%s", out)
	}
	if !strings.Contains(out, "agentkernel/network: egress") {
		t.Errorf("the preset's moderate profile did not give egress:\n%s", out)
	}

	// Explicit flags win: the image, the memory, a plain --env of the same
	// name, and --profile with what it implies.
	pod, _, err = dryRunPod(t, map[string]string{"TOOL_KEY": "k"}, "demo", "--agents-file", file, "--agent", "tool",
		"--image", "mine:2", "--memory", "3Gi", "--env", "TOOL_MODE=slow", "--profile", "restrictive")
	if err != nil {
		t.Fatal(err)
	}
	c = pod.Spec.Containers[0]
	if c.Image != "mine:2" || c.Resources.Limits.Memory().String() != "3Gi" || envOf(c)["TOOL_MODE"] != "slow" ||
		!*c.SecurityContext.ReadOnlyRootFilesystem || pod.Annotations["agentkernel/network"] != "none" {
		t.Errorf("flags did not win: %s %s %v ro=%v %v", c.Image, c.Resources.Limits.Memory(), c.Env, *c.SecurityContext.ReadOnlyRootFilesystem, pod.Annotations)
	}

	// A credential given as --env (plain) counts as given: no Secret for it.
	pod, _, err = dryRunPod(t, nil, "demo", "--agents-file", file, "--agent", "tool", "--env", "TOOL_KEY=visible")
	if err != nil || len(pod.Spec.Containers[0].EnvFrom) != 0 {
		t.Fatalf("--env for the credential: %v %v", err, pod)
	}

	if _, err := runCreate(t, nil, "demo", "--agents-file", file, "--agent", "tool", "--dry-run=client"); err == nil ||
		!strings.HasPrefix(err.Error(), "--agent tool needs TOOL_KEY in your environment") {
		t.Fatalf("missing credential: %v", err)
	}
}

// A preset's hosts matter only when egress is fenced by host name: any
// --allow-host adds to them, and without one the preset's profile rules.
func TestAgentHostsJoinAllowHost(t *testing.T) {
	file := presetsFile(t, clitest.Presets+"    hosts: [api.tool.example, 'registry.tool.example:8443']\n")
	env := map[string]string{"TOOL_KEY": "k"}
	pod, _, err := dryRunPod(t, env, "demo", "--agents-file", file, "--agent", "tool", "--allow-host", "github.com")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pod.Annotations["agentkernel/allow-hosts"], `["api.tool.example:443","registry.tool.example:8443","github.com:443"]`; got != want {
		t.Errorf("grants = %s, want %s", got, want)
	}
	if pod.Annotations["agentkernel/network"] != "none" {
		t.Errorf("fenced by host name, the network is %q, want none (only the proxy)", pod.Annotations["agentkernel/network"])
	}
	pod, _, err = dryRunPod(t, env, "demo", "--agents-file", file, "--agent", "tool")
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := pod.Annotations["agentkernel/allow-hosts"]; ok || pod.Annotations["agentkernel/network"] != "egress" {
		t.Errorf("without --allow-host: grants %q, network %q; want none and the preset's egress", g, pod.Annotations["agentkernel/network"])
	}
}

func TestCreateCommandIsTheMainProcess(t *testing.T) {
	pod, _, err := dryRunPod(t, nil, "work", "--command", "--", "sh", "-c", "read x; exit 7")
	if err != nil {
		t.Fatal(err)
	}
	c := pod.Spec.Containers[0]
	if got := c.Command[len(c.Command)-3:]; !reflect.DeepEqual(got, []string{"sh", "-c", "read x; exit 7"}) || !c.Stdin || !c.TTY {
		t.Fatalf("command %q stdin %v tty %v", c.Command, c.Stdin, c.TTY)
	}
	if c.Command[4] != "" {
		t.Errorf("nothing to install, yet the main process is held: %q", c.Command)
	}
	pod, _, err = dryRunPod(t, nil, "work", "--command", "--tty=false", "--", "agent")
	if err != nil || pod.Spec.Containers[0].TTY || !pod.Spec.Containers[0].Stdin {
		t.Fatalf("--tty=false: %v %+v", err, pod)
	}
	// The preset's command, held until its install step ran.
	file := presetsFile(t, clitest.Presets)
	pod, _, err = dryRunPod(t, map[string]string{"TOOL_KEY": "k"}, "work", "--agents-file", file, "--agent", "tool", "--command")
	if err != nil {
		t.Fatal(err)
	}
	if c := pod.Spec.Containers[0]; !reflect.DeepEqual(c.Command[len(c.Command)-2:], []string{"tool", "--go"}) || c.Command[4] == "" {
		t.Fatalf("preset command: %q", c.Command)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"args without --command":  {[]string{"work", "--", "sh"}, "add --command"},
		"--command without one":   {[]string{"work", "--command"}, "--command needs the command after '--'"},
		"--tty without --command": {[]string{"work", "--tty=false"}, "--tty is for the main process"},
	} {
		if _, err := runCreate(t, nil, append([]string{"--dry-run=client"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
