package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Admission we cannot foresee: a MutatingAdmissionPolicy (GA, served by
// admissionregistration.k8s.io/v1 and on by default since 1.36) stands in
// for any mutating webhook or policy a cluster runs. One that weakens a
// sandbox fails create, run and pool create with nothing left behind; one
// that changes nothing of its hardening (a label) passes; the flag that
// accepts a weakening passes with a warning.
func TestAdmissionMutations(t *testing.T) {
	requireCluster(t)
	weakened := newNamespace(t)
	labelled := newNamespace(t)
	mutatingPolicy(t, weakened, admissionv1.Mutation{
		PatchType: admissionv1.PatchTypeJSONPatch,
		JSONPatch: &admissionv1.JSONPatch{Expression: `[JSONPatch{op: "replace", path: "/spec/containers/0/securityContext/readOnlyRootFilesystem", value: false}]`},
	}, nil, func(p *corev1.Pod) bool {
		c := p.Spec.Containers[0].SecurityContext
		return c != nil && c.ReadOnlyRootFilesystem != nil && !*c.ReadOnlyRootFilesystem
	})
	mutatingPolicy(t, labelled, admissionv1.Mutation{
		PatchType:          admissionv1.PatchTypeApplyConfiguration,
		ApplyConfiguration: &admissionv1.ApplyConfiguration{Expression: `Object{metadata: Object.metadata{labels: {"e2e-admitted": "yes"}}}`},
	}, nil, func(p *corev1.Pod) bool { return p.Labels["e2e-admitted"] == "yes" })

	const why = "readOnlyRootFilesystem: asked true, stored false"
	t.Run("create refused, nothing left", func(t *testing.T) {
		r := plugin(t, "", "create", "weak", "-n", weakened)
		wantError(t, r, "in ways that weaken its hardening: spec.containers[sandbox].securityContext."+why)
		wantError(t, r, "accept it with --accept-admission-changes")
		assertNothingLeft(t, weakened)
	})
	t.Run("server dry run refused too", func(t *testing.T) {
		wantError(t, plugin(t, "", "create", "weak", "-n", weakened, "--dry-run=server"), why)
		assertNothingLeft(t, weakened)
	})
	t.Run("run refused, nothing left", func(t *testing.T) {
		// run reports its progress before the error line.
		r := plugin(t, "", "run", "-n", weakened, "--", "true")
		if r.code == 0 || !strings.Contains(r.stderr, "\nerror: the cluster's admission changed") || !strings.Contains(r.stderr, why) {
			t.Fatalf("run was not refused with the change:\n%s", r)
		}
		assertNothingLeft(t, weakened)
	})
	t.Run("pool create refused, nothing left", func(t *testing.T) {
		wantError(t, plugin(t, "", "pool", "create", "weak", "--size", "1", "-n", weakened), why)
		eventually(t, time.Minute, "the refused pool removed", func() bool {
			return len(objectsLeft(t, weakened)) == 0 && podTemplatesLeft(t, weakened) == 0
		})
	})
	t.Run("accepted with the flag, with a warning", func(t *testing.T) {
		r := mustPlugin(t, "", "create", "accepted", "-n", weakened, "--accept-admission-changes")
		if !strings.Contains(r.stderr, "Warning: the cluster's admission weakened the sandbox") || !strings.Contains(r.stderr, why) {
			t.Fatalf("no warning of the accepted change:\n%s", r)
		}
		pod, err := env.cs.CoreV1().Pods(weakened).Get(context.Background(), sandbox.PodName("accepted"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pod.Spec.SchedulingGates) != 0 {
			t.Fatalf("the accepted sandbox was never started: gates %v", pod.Spec.SchedulingGates)
		}
		mustPlugin(t, "", "delete", "accepted", "-n", weakened)
	})
	t.Run("a harmless change passes", func(t *testing.T) {
		r := mustPlugin(t, "", "create", "labelled", "-n", labelled)
		if strings.Contains(r.stderr, "Warning") {
			t.Fatalf("a label added by admission was reported:\n%s", r)
		}
		mustPlugin(t, "", "delete", "labelled", "-n", labelled)
	})
}

// mutatingPolicy makes a MutatingAdmissionPolicy (and its binding) that
// applies mutation to every Pod created in namespace, removed when the
// test ends, and waits until the API server applies it (policies reach
// admission through an informer): applied says a dry-run probe (a default
// sandbox's Pod if nil) shows it.
func mutatingPolicy(t *testing.T, namespace string, mutation admissionv1.Mutation, probe *corev1.Pod, applied func(*corev1.Pod) bool) {
	t.Helper()
	ctx := context.Background()
	name := namespace
	policies := env.cs.AdmissionregistrationV1().MutatingAdmissionPolicies()
	_, err := policies.Create(ctx, &admissionv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: namespace}},
				ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				}}},
			},
			Mutations:          []admissionv1.Mutation{mutation},
			FailurePolicy:      ptr.To(admissionv1.Fail),
			ReinvocationPolicy: admissionv1.NeverReinvocationPolicy,
		},
	}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) {
		t.Skipf("the API server does not serve MutatingAdmissionPolicy (GA in 1.36): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = policies.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	bindings := env.cs.AdmissionregistrationV1().MutatingAdmissionPolicyBindings()
	if _, err := bindings.Create(ctx, &admissionv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       admissionv1.MutatingAdmissionPolicyBindingSpec{PolicyName: name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bindings.Delete(context.Background(), name, metav1.DeleteOptions{}) })

	if probe == nil {
		spec := sandbox.NewSpec("probe", namespace)
		probe = spec.Pod()
	}
	eventually(t, time.Minute, "the policy applied in "+namespace, func() bool {
		got, err := env.cs.CoreV1().Pods(namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && applied(got)
	})
}

// A webhook that drops a warm install's startup probe would make a member
// Ready before its agent is installed: pool create --agent is refused for
// it, with nothing left behind.
func TestAdmissionDroppingTheStartupProbe(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	spec := sandbox.NewSpec("probe", ns)
	spec.WarmInstall = "true"
	mutatingPolicy(t, ns, admissionv1.Mutation{
		PatchType: admissionv1.PatchTypeJSONPatch,
		JSONPatch: &admissionv1.JSONPatch{Expression: `has(object.spec.containers[0].startupProbe) ? [JSONPatch{op: "remove", path: "/spec/containers/0/startupProbe"}] : []`},
	}, spec.Pod(), func(p *corev1.Pod) bool { return p.Spec.Containers[0].StartupProbe == nil })

	presets := filepath.Join(t.TempDir(), "agents.yaml")
	writeFiles(t, filepath.Dir(presets), map[string]string{"agents.yaml": `agents:
  e2etool:
    image: docker.io/library/busybox:1.37.0
    install: "true"
`})
	r := plugin(t, "", "pool", "create", "tools", "--agent", "e2etool", "--agents-file", presets, "--size", "1", "-n", ns)
	wantError(t, r, "spec.containers[sandbox].startupProbe: asked ours, stored none")
	eventually(t, time.Minute, "the refused pool removed", func() bool {
		return len(objectsLeft(t, ns)) == 0 && podTemplatesLeft(t, ns) == 0
	})
	// A plain pool passes: nothing of it is changed.
	mustPlugin(t, "", "pool", "create", "plain", "--size", "1", "-n", ns)
	mustPlugin(t, "", "pool", "delete", "plain", "-n", ns)
	eventuallyNoPoolLeft(t, ns)
}
