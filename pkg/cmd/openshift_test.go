package cmd

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func openshiftProject() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "test", Annotations: map[string]string{
		sandbox.AnnotationSCCUIDRange:           "1000680000/10000",
		sandbox.AnnotationSCCSupplementalGroups: "1000680000/10000",
		sandbox.AnnotationSCCMCS:                "s0:c26,c15",
	}}}
}

// In an OpenShift project a sandbox runs as the project's first UID with
// no flag, and --uid is checked against the range before anything is made.
func TestCreateInAnOpenShiftProject(t *testing.T) {
	out, _, err := runCreateOn(t, fakecluster.New(openshiftProject()), nil, "demo", "--dry-run=client", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"runAsUser: 1000680000", "runAsGroup: 1000680000", "fsGroup: 1000680000", "runAsNonRoot: true"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if out, _, err = runCreateOn(t, fakecluster.New(openshiftProject()), nil, "demo", "--uid", "1000680042", "--dry-run=client", "-o", "yaml"); err != nil || !strings.Contains(out, "runAsUser: 1000680042") {
		t.Errorf("a --uid in the range: %v\n%s", err, out)
	}

	cs := fakecluster.New(openshiftProject())
	_, _, err = runCreateOn(t, cs, nil, "demo", "--uid", "1000")
	want := `--uid 1000 is outside the UIDs namespace "test" admits (1000680000-1000689999, its openshift.io/sa.scc.uid-range annotation: OpenShift's restricted-v2 SCC refuses any other); leave --uid out to run as 1000680000`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource != "selfsubjectreviews" {
			t.Errorf("made something before refusing: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}
