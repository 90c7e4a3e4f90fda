package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// GKE Autopilot, emulated: its admission (GKE Warden, the resource
// mutator) is Google's and runs only there, so its documented rules
// ("Resource requests in Autopilot", "Autopilot security capabilities")
// are written here as a ValidatingAdmissionPolicy (what it refuses) and a
// MutatingAdmissionPolicy (what it raises). A control case proves the
// emulation refuses what Autopilot refuses. Against a real Autopilot
// cluster (E2E_KUBECONFIG) the policies are not made: the platform's own
// admission answers, and the sandbox cases must hold the same.
const autopilotWords = "emulated GKE Warden: "

func TestAutopilot(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	// The control cases run where Pod Security does not answer first
	// (Autopilot itself enforces only its own rules): a namespace of its own.
	control := ns + "-ctl"
	if env.cluster != nil {
		if _, err := env.cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: control, Labels: map[string]string{"e2e.agentkernel/test": "true"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteNamespace(t, control) })
		waitForServiceAccount(t, control)
		autopilotRules(t, ns, control)
	}

	t.Run("control: the emulation refuses what Autopilot refuses", func(t *testing.T) {
		if env.cluster == nil {
			t.Skip("a real cluster's own admission answers")
		}
		for name, change := range map[string]func(*corev1.Pod){
			"privileged": func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext.Privileged = ptr.To(true)
				p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
			},
			"hostPath": func(p *corev1.Pod) {
				p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}})
			},
			"ephemeral storage above 10Gi": func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Requests[corev1.ResourceEphemeralStorage] = resource.MustParse("20Gi")
				p.Spec.Containers[0].Resources.Limits[corev1.ResourceEphemeralStorage] = resource.MustParse("20Gi")
			},
			"a capability beyond its default set": func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
			},
		} {
			spec := sandbox.NewSpec("control", control)
			pod := spec.Pod()
			change(pod)
			_, err := env.cs.CoreV1().Pods(control).Create(context.Background(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil || !strings.Contains(err.Error(), autopilotWords) {
				t.Errorf("%s: the emulation admitted it: %v", name, err)
			}
		}
	})
	t.Run("a default sandbox keeps its rules", func(t *testing.T) {
		r := mustPlugin(t, "", "create", "fits", "-n", ns)
		if strings.Contains(r.stderr, "Warning") {
			t.Fatalf("Autopilot's rules changed a default sandbox:\n%s", r)
		}
		mustPlugin(t, "", "delete", "fits", "-n", ns)
	})
	t.Run("too much ephemeral storage: refused with the platform's reason", func(t *testing.T) {
		wantError(t, plugin(t, "", "create", "big", "-n", ns, "--ephemeral-storage", "20Gi"), "ephemeral-storage above the general-purpose maximum of 10Gi")
		assertNothingLeft(t, ns)
	})
	t.Run("memory below the ratio: the raised limit is refused", func(t *testing.T) {
		r := plugin(t, "", "create", "thin", "-n", ns, "--memory", "512Mi")
		wantError(t, r, "spec.containers[sandbox].resources.limits.memory: asked 512Mi, stored 1Gi")
		assertNothingLeft(t, ns)
	})
}

// autopilotRules makes the emulation in namespace (its refusals in control
// too): Autopilot's refusals
// as a ValidatingAdmissionPolicy, its raising of memory to 1 GiB per CPU
// (for a 1-CPU sandbox) as a MutatingAdmissionPolicy.
func autopilotRules(t *testing.T, namespace, control string) {
	t.Helper()
	ctx := context.Background()
	match := &admissionv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: []string{namespace, control}}}},
		ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
			Operations: []admissionv1.OperationType{admissionv1.Create},
			Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
		}}},
	}
	rule := func(expr, msg string) admissionv1.Validation {
		return admissionv1.Validation{Expression: expr, Message: autopilotWords + msg}
	}
	containers := "(object.spec.containers + (has(object.spec.initContainers) ? object.spec.initContainers : []))"
	name := "autopilot-" + namespace
	vap := env.cs.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	if _, err := vap.Create(ctx, &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: match,
			FailurePolicy:    ptr.To(admissionv1.Fail),
			Validations: []admissionv1.Validation{
				rule(containers+`.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || !c.securityContext.privileged)`,
					"privileged containers are not allowed"),
				rule(`!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.hostPath) || v.hostPath.path.startsWith('/var/log'))`,
					"hostPath volumes are allowed only under /var/log"),
				rule(`!(has(object.spec.hostNetwork) && object.spec.hostNetwork) && !(has(object.spec.hostPID) && object.spec.hostPID)`,
					"host namespaces are not allowed"),
				rule(containers+`.all(c, !has(c.securityContext) || !has(c.securityContext.capabilities) || !has(c.securityContext.capabilities.add) || `+
					`c.securityContext.capabilities.add.all(a, a in ['AUDIT_WRITE','CHOWN','DAC_OVERRIDE','FOWNER','FSETID','KILL','MKNOD','NET_BIND_SERVICE','NET_RAW','SETFCAP','SETGID','SETPCAP','SETUID','SYS_CHROOT','SYS_PTRACE']))`,
					"capabilities beyond Autopilot's default set are not allowed"),
				rule(containers+`.all(c, !has(c.resources.requests) || !('ephemeral-storage' in c.resources.requests) || quantity(c.resources.requests['ephemeral-storage']).compareTo(quantity('10Gi')) <= 0)`,
					"ephemeral-storage above the general-purpose maximum of 10Gi"),
				rule(`!has(object.spec.runtimeClassName) || object.spec.runtimeClassName == 'gvisor'`,
					"the only RuntimeClass is gvisor"),
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vap.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	bindings := env.cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	if _, err := bindings.Create(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bindings.Delete(context.Background(), name, metav1.DeleteOptions{}) })

	// Memory below 1 GiB per CPU is raised to it, request and limit.
	thin := sandbox.NewSpec("probe", namespace)
	thin.Memory = resource.MustParse("512Mi")
	mutatingPolicy(t, namespace, admissionv1.Mutation{
		PatchType: admissionv1.PatchTypeJSONPatch,
		JSONPatch: &admissionv1.JSONPatch{Expression: `quantity(object.spec.containers[0].resources.requests.memory).compareTo(quantity('1Gi')) < 0 ? [` +
			`JSONPatch{op: "replace", path: "/spec/containers/0/resources/requests/memory", value: "1Gi"},` +
			`JSONPatch{op: "replace", path: "/spec/containers/0/resources/limits/memory", value: "1Gi"}] : []`},
	}, thin.Pod(), func(p *corev1.Pod) bool {
		return p.Spec.Containers[0].Resources.Limits.Memory().Cmp(resource.MustParse("1Gi")) == 0
	})
	big := sandbox.NewSpec("probe", namespace)
	big.EphemeralStorage = resource.MustParse("20Gi")
	eventually(t, time.Minute, "the emulated refusals in force", func() bool {
		_, err := env.cs.CoreV1().Pods(namespace).Create(ctx, big.Pod(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), autopilotWords)
	})
}
