// Package clitest holds what the tests of pkg/cmd and of the command
// families' packages share: a kubectl test factory whose API server knows
// given Pods, agent presets to load, and a runner for a cobra command.
// Only tests import it (internal/arrows keeps it out of the product).
package clitest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/rest/fake"
	cmdtesting "k8s.io/kubectl/pkg/cmd/testing"
	"k8s.io/kubectl/pkg/scheme"
	"sigs.k8s.io/yaml"
)

// Factory serves the given pods by GET and by LIST (honouring the label
// selector), lists the given workspaces (PersistentVolumeClaims), and 404s
// everything else.
func Factory(t *testing.T, objects ...runtime.Object) *cmdtesting.TestFactory {
	t.Helper()
	tf := cmdtesting.NewTestFactory().WithNamespace("test")
	t.Cleanup(tf.Cleanup)
	codec := scheme.Codecs.LegacyCodec(scheme.Scheme.PrioritizedVersionsAllGroups()...)
	var pods []*corev1.Pod
	var claims []*corev1.PersistentVolumeClaim
	for _, o := range objects {
		switch o := o.(type) {
		case *corev1.Pod:
			pods = append(pods, o)
		case *corev1.PersistentVolumeClaim:
			claims = append(claims, o)
		default:
			t.Fatalf("clitest.Factory serves pods and persistentvolumeclaims, not %T", o)
		}
	}
	tf.Client = &fake.RESTClient{
		GroupVersion:         schema.GroupVersion{Version: "v1"},
		NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
		Client: fake.CreateHTTPClient(func(req *http.Request) (*http.Response, error) {
			for _, p := range pods {
				if req.Method == http.MethodGet && req.URL.Path == "/api/v1/namespaces/"+p.Namespace+"/pods/"+p.Name {
					return &http.Response{StatusCode: http.StatusOK, Header: cmdtesting.DefaultHeader(), Body: cmdtesting.ObjBody(codec, p)}, nil
				}
			}
			if ns, ok := strings.CutSuffix(strings.TrimPrefix(req.URL.Path, "/api/v1/namespaces/"), "/pods"); ok && req.Method == http.MethodGet {
				sel, err := labels.Parse(req.URL.Query().Get("labelSelector"))
				if err != nil {
					return nil, err
				}
				list := &corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
				for _, p := range pods {
					if p.Namespace == ns && sel.Matches(labels.Set(p.Labels)) {
						list.Items = append(list.Items, *p)
					}
				}
				return &http.Response{StatusCode: http.StatusOK, Header: cmdtesting.DefaultHeader(), Body: cmdtesting.ObjBody(codec, list)}, nil
			}
			if ns, ok := strings.CutSuffix(strings.TrimPrefix(req.URL.Path, "/api/v1/namespaces/"), "/persistentvolumeclaims"); ok && req.Method == http.MethodGet {
				sel, err := labels.Parse(req.URL.Query().Get("labelSelector"))
				if err != nil {
					return nil, err
				}
				list := &corev1.PersistentVolumeClaimList{TypeMeta: metav1.TypeMeta{Kind: "PersistentVolumeClaimList", APIVersion: "v1"}}
				for _, c := range claims {
					if c.Namespace == ns && sel.Matches(labels.Set(c.Labels)) {
						list.Items = append(list.Items, *c)
					}
				}
				return &http.Response{StatusCode: http.StatusOK, Header: cmdtesting.DefaultHeader(), Body: cmdtesting.ObjBody(codec, list)}, nil
			}
			status := &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound, Message: "not found"}
			return &http.Response{StatusCode: http.StatusNotFound, Header: cmdtesting.DefaultHeader(), Body: cmdtesting.ObjBody(codec, status)}, nil
		}),
	}
	tf.ClientConfigVal = &restclient.Config{APIPath: "/api", ContentConfig: restclient.ContentConfig{NegotiatedSerializer: scheme.Codecs, GroupVersion: &schema.GroupVersion{Version: "v1"}}}
	return tf
}

// RunCobra runs the command cmd builds with args, as a user would, and
// returns what it wrote to its out and errOut streams.
func RunCobra(t *testing.T, cmd func(genericiooptions.IOStreams) *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	c := cmd(streams)
	c.SetArgs(args)
	c.SetOut(io.Discard)
	c.SetErr(io.Discard)
	err := c.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// Presets are agent presets (an --agents-file): tool needs TOOL_KEY and
// an install step.
const Presets = `agents:
  tool:
    image: example.org/tool:1
    install: install-the-tool
    command: [tool, --go]
    credentials:
      required: [TOOL_KEY]
    env: {TOOL_MODE: fast}
    profile: moderate
`

// ListItems reads a List printed with -o yaml: the kinds of its items, in
// order, and the List itself.
func ListItems(t *testing.T, out string) ([]string, []corev1.List) {
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
