package cmd

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"encoding/base64"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

const (
	injectedKey = "sk-ant-injected-never-in-the-sandbox"
	oauthToken  = "oauth-token-never-in-the-sandbox"
)

// create --agent claude --allow-host: the proxy adds the API key; the
// sandbox sees a placeholder and the proxy's route; the OAuth token for the
// same host is not passed at all, and the user hears so.
func TestCreateInjectsPresetKeys(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cs := fakecluster.New()
	_, errOut, err := runCreateOn(t, cs, map[string]string{"ANTHROPIC_API_KEY": injectedKey, "CLAUDE_CODE_OAUTH_TOKEN": oauthToken},
		"demo", "--agent", "claude", "--allow-host", "example.com", "--wait=false")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "note: CLAUDE_CODE_OAUTH_TOKEN is not passed: ANTHROPIC_API_KEY is injected for api.anthropic.com already") {
		t.Errorf("no notice of the token left out: %s", errOut)
	}
	ctx := context.Background()
	pod, err := cs.CoreV1().Pods("test").Get(ctx, "agentkernel-demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["ANTHROPIC_API_KEY"] != keys.Placeholder || !strings.HasSuffix(env["ANTHROPIC_BASE_URL"], ":3128/agentkernel/inject/api.anthropic.com") {
		t.Errorf("env: key %q, base URL %q", env["ANTHROPIC_API_KEY"], env["ANTHROPIC_BASE_URL"])
	}
	if _, ok := env["CLAUDE_CODE_OAUTH_TOKEN"]; ok || len(pod.Spec.Containers[0].EnvFrom) != 0 {
		t.Errorf("the token or a Secret reaches the sandbox: %v %v", env["CLAUDE_CODE_OAUTH_TOKEN"], pod.Spec.Containers[0].EnvFrom)
	}
	table, err := cs.CoreV1().Secrets("test").Get(ctx, keys.SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := keys.Decode(table.Data[pod.Name])
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := e.For("api.anthropic.com"); !ok || c.Key != injectedKey || e.Grant != pod.Annotations[keys.GrantAnnotation] {
		t.Fatalf("entry %+v, pod's grant %q", e, pod.Annotations[keys.GrantAnnotation])
	}
	assertNoKeyOutsideTable(t, cs, injectedKey, oauthToken)
}

// assertNoKeyOutsideTable: no Pod or Secret but the key table holds a key,
// in plain or in the base64 the API stores Secret data in.
func assertNoKeyOutsideTable(t *testing.T, cs *fake.Clientset, secrets ...string) {
	t.Helper()
	ctx := context.Background()
	var objs []any
	pods, _ := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	for i := range pods.Items {
		objs = append(objs, &pods.Items[i])
	}
	list, _ := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	for i := range list.Items {
		if list.Items[i].Name != keys.SecretName {
			objs = append(objs, &list.Items[i])
		}
	}
	for _, o := range objs {
		b, _ := json.Marshal(o)
		for _, s := range secrets {
			if strings.Contains(string(b), s) || strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte(s))) {
				t.Errorf("a key is in %s", b)
			}
		}
	}
}

// --inject-keys=false: the old path, the key in the sandbox's Secret.
func TestCreateInjectKeysOff(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cs := fakecluster.New()
	if _, _, err := runCreateOn(t, cs, map[string]string{"ANTHROPIC_API_KEY": injectedKey},
		"demo", "--agent", "claude", "--allow-host", "example.com", "--inject-keys=false", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pod, _ := cs.CoreV1().Pods("test").Get(ctx, "agentkernel-demo", metav1.GetOptions{})
	if len(pod.Spec.Containers[0].EnvFrom) != 1 || pod.Annotations[keys.GrantAnnotation] != "" {
		t.Fatalf("envFrom %v, grant %q", pod.Spec.Containers[0].EnvFrom, pod.Annotations[keys.GrantAnnotation])
	}
	// egress install makes the table empty; nothing is written into it.
	if table, err := cs.CoreV1().Secrets("test").Get(ctx, keys.SecretName, metav1.GetOptions{}); err == nil && len(table.Data) != 0 {
		t.Fatalf("an entry was written: %v", table.Data)
	}
}

// Without --allow-host the sandbox has no route to the proxy: the preset's
// key goes into the Secret as before.
func TestCreateInjectNeedsTheProxyRoute(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cs := fakecluster.New()
	if _, _, err := runCreateOn(t, cs, map[string]string{"ANTHROPIC_API_KEY": injectedKey}, "demo", "--agent", "claude", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	pod, _ := cs.CoreV1().Pods("test").Get(context.Background(), "agentkernel-demo", metav1.GetOptions{})
	if len(pod.Spec.Containers[0].EnvFrom) != 1 {
		t.Fatalf("envFrom %v", pod.Spec.Containers[0].EnvFrom)
	}
}

// --inject for a tool no preset knows: its host joins --allow-host (the
// sandbox is fenced by it alone), the header is the one given.
func TestCreateInjectFlag(t *testing.T) {
	cs := fakecluster.New()
	if _, _, err := runCreateOn(t, cs, map[string]string{"GROQ_API_KEY": injectedKey},
		"demo", "--inject", "GROQ_API_KEY=api.groq.com:x-api-key", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pod, _ := cs.CoreV1().Pods("test").Get(ctx, "agentkernel-demo", metav1.GetOptions{})
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["GROQ_API_KEY"] != keys.Placeholder || !strings.HasSuffix(env["GROQ_BASE_URL"], "/agentkernel/inject/api.groq.com") {
		t.Errorf("env %v", env)
	}
	if got := pod.Annotations["agentkernel/allow-hosts"]; got != `["api.groq.com:443"]` {
		t.Errorf("allow-hosts %s", got)
	}
	table, _ := cs.CoreV1().Secrets("test").Get(ctx, keys.SecretName, metav1.GetOptions{})
	e, _ := keys.Decode(table.Data[pod.Name])
	if c, ok := e.For("api.groq.com"); !ok || c.Header != "X-Api-Key" || c.Prefix != "" {
		t.Errorf("entry %+v", e)
	}
}

func TestCreateInjectFlagErrors(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--inject", "K"}, `--inject "K": want NAME=HOST[:HEADER]`},
		{[]string{"--inject", "K=*.example.com"}, `must be one host name`},
		{[]string{"--inject", "K=api.example.com:bad header"}, `is not a canonical header name`},
		{[]string{"--inject", "MISSING_KEY=api.example.com"}, `--inject MISSING_KEY: no such variable in your environment`},
		{[]string{"--inject", "K=api.example.com", "--inject-keys=false"}, `drop --inject-keys=false`},
		{[]string{"--inject", "K=api.example.com", "--inject", "K=api.other.com"}, `--inject K is given twice`},
		{[]string{"--inject", "K=api.example.com", "--inject", "L=api.example.com"}, `the proxy adds one key per host`},
		{[]string{"--inject", "K=api.example.com", "--network", "egress"}, "cannot be combined with"},
	} {
		_, _, err := runCreateOn(t, fakecluster.New(), map[string]string{"K": "k", "L": "l"}, append([]string{"demo", "--wait=false"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %s", c.args, err, c.want)
		}
	}
}

func TestBaseURLVariable(t *testing.T) {
	for in, want := range map[string]string{"OPENAI_API_KEY": "OPENAI_BASE_URL", "MY_TOKEN": "MY_BASE_URL", "GH_KEY": "GH_BASE_URL", "SECRET": "SECRET_BASE_URL", "_KEY": "_KEY_BASE_URL"} {
		if got := cli.BaseURLVariable(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
