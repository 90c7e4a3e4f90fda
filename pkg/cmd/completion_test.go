package cmd

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest/fake"
	cmdtesting "k8s.io/kubectl/pkg/cmd/testing"
	"k8s.io/kubectl/pkg/scheme"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func TestCompletionScripts(t *testing.T) {
	// Each script must name the binary (kubectl-agentkernel) and call back
	// into its __complete command, or dynamic completion silently breaks.
	tests := []struct {
		shell string
		args  []string
		want  []string
	}{
		{"bash", nil, []string{"# bash completion V2 for kubectl-agentkernel", "__start_kubectl-agentkernel", "complete -o default -F __start_kubectl-agentkernel kubectl-agentkernel", "__complete"}},
		{"zsh", nil, []string{"#compdef kubectl-agentkernel", "compdef _kubectl-agentkernel kubectl-agentkernel", "__complete"}},
		{"fish", nil, []string{"# fish completion for kubectl-agentkernel", "complete -c kubectl-agentkernel", "__complete"}},
		{"powershell", nil, []string{"# powershell completion for kubectl-agentkernel", "Register-ArgumentCompleter", "__complete"}},
		{"bash", []string{"--no-descriptions"}, []string{"# bash completion V2 for kubectl-agentkernel", "__completeNoDesc"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{tt.shell}, tt.args...), " "), func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			root := NewCmdRoot(streams)
			root.SetArgs(append([]string{"completion", tt.shell}, tt.args...))
			if err := root.ExecuteContext(context.Background()); err != nil {
				t.Fatalf("completion %s: %v (stderr %q)", tt.shell, err, errOut)
			}
			script := out.String()
			for _, w := range tt.want {
				if !strings.Contains(script, w) {
					t.Errorf("completion %s: script lacks %q; it starts:\n%.400s", tt.shell, w, script)
				}
			}
			if errOut.Len() != 0 {
				t.Errorf("completion %s wrote to stderr: %q", tt.shell, errOut)
			}
		})
	}
}

func TestCompletionRejectsBadArgs(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"completion"}, "accepts 1 arg(s), received 0"},
		{[]string{"completion", "tcsh"}, `unsupported shell "tcsh"; choose one of: bash, zsh, fish, powershell`},
		{[]string{"completion", "bash", "zsh"}, "accepts 1 arg(s), received 2"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			streams, _, out, _ := genericiooptions.NewTestIOStreams()
			root := NewCmdRoot(streams)
			root.SetArgs(tt.args)
			err := root.ExecuteContext(context.Background())
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("got error %v, want %q", err, tt.wantErr)
			}
			if out.Len() != 0 {
				t.Errorf("printed a script despite the error: %.200q", out)
			}
		})
	}
}

// TestCompletionCompletesShells drives cobra's own __complete, the entry
// point that both the shell scripts and kubectl_complete-agentkernel use.
func TestCompletionCompletesShells(t *testing.T) {
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := NewCmdRoot(streams)
	root.SetArgs([]string{"__complete", "completion", "f"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "fish\n:4\n"; got != want {
		t.Errorf("__complete completion f = %q, want %q", got, want)
	}
}

// pod is a Pod as create makes it: named with the prefix, labelled with the
// sandbox name (plus podLabels, which decide whether it counts as managed).
func pod(namespace, name string, podLabels map[string]string) corev1.Pod {
	l := map[string]string{sandbox.LabelSandbox: name}
	for k, v := range podLabels {
		l[k] = v
	}
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: sandbox.PodName(name), Labels: l}}
}

var managed = map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy}

// fakeCluster serves pod lists the way the API server does: by namespace
// and by label selector, so a wrong or missing selector shows in the result.
func fakeCluster(t *testing.T, pods ...corev1.Pod) *cmdtesting.TestFactory {
	t.Helper()
	tf := cmdtesting.NewTestFactory().WithNamespace("agents")
	t.Cleanup(tf.Cleanup)
	codec := scheme.Codecs.LegacyCodec(scheme.Scheme.PrioritizedVersionsAllGroups()...)
	tf.Client = &fake.RESTClient{
		NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
		Client: fake.CreateHTTPClient(func(req *http.Request) (*http.Response, error) {
			namespace, ok := strings.CutPrefix(req.URL.Path, "/api/v1/namespaces/")
			namespace, ok2 := strings.CutSuffix(namespace, "/pods")
			if req.Method != http.MethodGet || !ok || !ok2 {
				t.Errorf("unexpected request %s %s", req.Method, req.URL)
				return &http.Response{StatusCode: http.StatusNotFound, Header: cmdtesting.DefaultHeader(), Body: cmdtesting.StringBody("")}, nil
			}
			selector, err := labels.Parse(req.URL.Query().Get("labelSelector"))
			if err != nil {
				t.Errorf("bad label selector in %s: %v", req.URL, err)
			}
			list := &corev1.PodList{}
			for _, p := range pods {
				if p.Namespace == namespace && selector.Matches(labels.Set(p.Labels)) {
					list.Items = append(list.Items, p)
				}
			}
			return &http.Response{StatusCode: http.StatusOK, Header: cmdtesting.DefaultHeader(), Body: cmdtesting.ObjBody(codec, list)}, nil
		}),
	}
	return tf
}

// completeWith runs `__complete NAME args...` against a tree whose commands
// exec, cp and delete use cli.CompleteSandboxNames, as the real ones do.
func completeWith(t *testing.T, tf *cmdtesting.TestFactory, args ...string) string {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := &cobra.Command{Use: "kubectl-agentkernel"}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	for _, name := range []string{"exec", "cp", "delete"} {
		root.AddCommand(&cobra.Command{
			Use:               name,
			ValidArgsFunction: cli.CompleteSandboxNames(tf),
			RunE:              func(*cobra.Command, []string) error { return nil },
		})
	}
	root.SetArgs(append([]string{"__complete"}, args...))
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("__complete %q: %v (stderr %q)", args, err, errOut)
	}
	return out.String()
}

func TestCompleteSandboxNames(t *testing.T) {
	tf := fakeCluster(t,
		pod("agents", "alpha", managed),
		pod("agents", "alpine", managed),
		pod("agents", "beta", managed),
		pod("agents", "alpaca-unmanaged", map[string]string{"app": "alpaca"}),
		pod("agents", "almost", map[string]string{"agentkernel/managed-by": "someone-else"}),
		pod("other", "alpha-elsewhere", managed),
	)
	// Run from an empty directory: cp mixes local files into its choices.
	t.Chdir(t.TempDir())

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"exec lists only managed pods of the namespace", []string{"exec", ""}, "alpha\nalpine\nbeta\n:4\n"},
		{"exec filters by prefix", []string{"exec", "alp"}, "alpha\nalpine\n:4\n"},
		{"exec with no match", []string{"exec", "zz"}, ":4\n"},
		{"exec completes only the sandbox", []string{"exec", "alpha", "--", ""}, ":4\n"},
		{"delete skips names already given", []string{"delete", "alpha", "al"}, "alpine\n:4\n"},
		{"cp offers NAME: without a trailing space", []string{"cp", "be"}, "beta:\n:2\n"},
		{"cp hints at local paths when nothing is typed", []string{"cp", ""}, "alpha:\nalpine:\nbeta:\n./\n/\n:2\n"},
		{"cp leaves local paths to the shell", []string{"cp", "./"}, ":0\n"},
		{"cp cannot list remote paths", []string{"cp", "alpha:/wo"}, ":4\n"},
		{"cp after a remote source wants a local destination", []string{"cp", "alpha:/workspace", ""}, ":0\n"},
		{"cp after a local source wants a sandbox", []string{"cp", "./out", "al"}, "alpha:\nalpine:\n:2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := completeWith(t, tf, tt.args...); got != tt.want {
				t.Errorf("__complete %q:\n got %q\nwant %q", tt.args, got, tt.want)
			}
		})
	}
}

func TestCompleteSandboxNamesUsesFactoryNamespace(t *testing.T) {
	tf := fakeCluster(t, pod("agents", "alpha", managed), pod("other", "alpha-elsewhere", managed))
	tf.WithNamespace("other")
	if got, want := completeWith(t, tf, "exec", ""), "alpha-elsewhere\n:4\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCompleteCopyMixesInLocalFiles(t *testing.T) {
	tf := fakeCluster(t, pod("agents", "repo-sandbox", managed))
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "repo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	got := completeWith(t, tf, "cp", "re")
	if want := "repo-sandbox:\nrepo/\nreport.txt\n:2\n"; got != want {
		t.Errorf("__complete cp re:\n got %q\nwant %q", got, want)
	}
}

func TestCompleteSandboxNamesReportsAPIErrors(t *testing.T) {
	tf := cmdtesting.NewTestFactory().WithNamespace("agents")
	t.Cleanup(tf.Cleanup)
	tf.Client = &fake.RESTClient{
		NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
		Client: fake.CreateHTTPClient(func(*http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusForbidden, Header: cmdtesting.DefaultHeader(), Body: cmdtesting.StringBody(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`)}, nil
		}),
	}
	// ShellCompDirectiveError (1): the shell offers nothing rather than files.
	if got, want := completeWith(t, tf, "exec", ""), ":1\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Every command's --pool completes the namespace's pools, serve's and
// mcp's as well as create's and run's: a flag added without one would
// silently complete file names.
func TestEveryPoolFlagCompletes(t *testing.T) {
	root := NewCmdRoot(genericiooptions.NewTestIOStreamsDiscard())
	var seen []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("pool") != nil {
			seen = append(seen, c.CommandPath())
			if _, ok := c.GetFlagCompletionFunc("pool"); !ok {
				t.Errorf("%s --pool has no completion", c.CommandPath())
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if len(seen) < 3 {
		t.Errorf("found --pool on %q only; the walk misses commands", seen)
	}
}
