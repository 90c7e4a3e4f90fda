package doctor

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func openshiftProject(name string) *corev1.Namespace {
	ns := restrictedNamespace(name)
	ns.Annotations = map[string]string{
		sandbox.AnnotationSCCUIDRange:           "1000680000/10000",
		sandbox.AnnotationSCCSupplementalGroups: "1000680000/10000",
		sandbox.AnnotationSCCMCS:                "s0:c26,c15",
	}
	return ns
}

// On an OpenShift project doctor names the range and what sandboxes run
// as, and its dry-run sandbox is one the range admits.
func TestUIDRangeOfAnOpenShiftProject(t *testing.T) {
	cs := cluster(t, "v1.37.2", nil, openshiftProject("agents"))
	var sent *corev1.Pod
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sent = a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		return false, nil, nil
	})
	results := Run(context.Background(), &Env{Clientset: cs, Namespace: "agents", Server: "https://k8s"})
	wantLine(t, results, "uid-range", OK, `namespace "agents" admits UIDs 1000680000-1000689999 and fsGroups 1000680000-1000689999`)
	wantLine(t, results, "uid-range", OK, "sandboxes run as UID 1000680000, group 1000680000")
	wantLine(t, results, "admission", OK, "passes admission unchanged")
	if sent == nil || *sent.Spec.SecurityContext.RunAsUser != 1000680000 || *sent.Spec.SecurityContext.FSGroup != 1000680000 {
		t.Errorf("the dry-run sandbox is not the namespace's first UID: %+v", sent)
	}
}

func TestUIDRangeFindings(t *testing.T) {
	plain := cluster(t, "v1.37.2", nil, restrictedNamespace("agents"))
	wantLine(t, checkUIDRange(context.Background(), &Env{Clientset: plain, Namespace: "agents"}), "", OK, "assigns no UID range")

	broken := openshiftProject("agents")
	broken.Annotations[sandbox.AnnotationSCCUIDRange] = "1000680000"
	bad := cluster(t, "v1.37.2", nil, broken)
	wantLine(t, checkUIDRange(context.Background(), &Env{Clientset: bad, Namespace: "agents"}), "", Fail, "annotation openshift.io/sa.scc.uid-range=\"1000680000\"")

	hidden := cluster(t, "v1.37.2", nil, openshiftProject("agents"))
	hidden.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "agents", errors.New("no"))
	})
	r := checkUIDRange(context.Background(), &Env{Clientset: hidden, Namespace: "agents"})
	wantLine(t, r, "", Warn, "cannot read namespace \"agents\"")
	if !strings.Contains(r[0].Action, "--uid") || !strings.Contains(r[0].Action, "kubectl agentkernel rbac -n agents") {
		t.Errorf("the warning does not say what to do: %s", r[0].Action)
	}
}

// Refused by the SCC, doctor names the platform's rule, not resources.
func TestAdmissionRefusedBySCC(t *testing.T) {
	cs := cluster(t, "v1.37.2", nil, restrictedNamespace("agents"))
	cs.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "x",
			errors.New(`unable to validate against any security context constraint: [provider "restricted-v2": Forbidden: not usable by user or serviceaccount, spec.containers[0].securityContext.runAsUser: Invalid value: 1000: must be in the ranges: [1000680000, 1000689999]]`))
	})
	r := checkAdmission(context.Background(), &Env{Clientset: cs, Namespace: "agents"})
	wantLine(t, r, "", Fail, "must be in the ranges")
	if strings.Contains(r[0].Action, "--cpu") || !strings.Contains(r[0].Action, "SCC") || !strings.Contains(r[0].Action, "leave --uid out") {
		t.Errorf("the action does not name the SCC's rule: %s", r[0].Action)
	}
}
