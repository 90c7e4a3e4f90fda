package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/doctor"
	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
)

type doctorReport struct {
	Namespace string
	Failed    int
	Items     []doctor.Result // doctor -o json: a DoctorFindingList
}

// runDoctor runs doctor -o json as kubeconfig and decodes the report.
func runDoctor(t *testing.T, kubeconfig string, args ...string) (doctorReport, result) {
	t.Helper()
	r := pluginAs(t, kubeconfig, "", append([]string{"doctor", "-o", "json"}, args...)...)
	var rep doctorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, r)
	}
	if (rep.Failed > 0) != (r.code != 0) {
		t.Errorf("%d failures but exit %d", rep.Failed, r.code)
	}
	return rep, r
}

func (rep doctorReport) want(t *testing.T, check string, status doctor.Status, found string) {
	t.Helper()
	for _, f := range rep.Items {
		if f.Check == check && f.Status == status && strings.Contains(f.Found, found) {
			if status != doctor.OK && f.Action == "" {
				t.Errorf("%s %s says what it found, not what to do: %s", status, check, f.Found)
			}
			return
		}
	}
	b, _ := json.MarshalIndent(rep.Items, "", "  ")
	t.Errorf("no %s %s line saying %q:\n%s", status, check, found, b)
}

// doctor on a real API server, as a least-privilege user: a healthy
// namespace, then what it finds wrong in others.
func TestDoctorOnTheLocalCluster(t *testing.T) {
	requireUsers(t)
	withClusterDNS(t)
	ns := newNamespace(t)
	u := newUser(t, "e2e-doctor")
	applyRBAC(t, "-n", ns, "--user", u.name)
	waitForAccess(t, u, ns, rbacPermission(t, "create pods/exec"), true)

	rep, r := runDoctor(t, u.kubeconfig, "-n", ns)
	if r.code != 0 {
		t.Fatalf("a healthy namespace fails:\n%s", r)
	}
	rep.want(t, "api-server", doctor.OK, "answers: Kubernetes v")
	rep.want(t, "identity", doctor.OK, "you are "+u.name)
	rep.want(t, "namespace", doctor.OK, "Pod Security enforces restricted")
	for _, p := range rbac.Of(rbac.Namespace) {
		rep.want(t, "permissions", doctor.OK, p.GroupResource()+` in namespace "`+ns+`"`)
	}
	rep.want(t, "permissions", doctor.Warn, "may not list pods in every namespace (optional")
	rep.want(t, "admission", doctor.OK, "passes admission unchanged")
	rep.want(t, "dns", doctor.OK, "Service kube-system/kube-dns: pods k8s-app=kube-dns in kube-system, ports 5353/UDP 5353/TCP")
	rep.want(t, "runtime-classes", doctor.Warn, "cannot list RuntimeClasses")
	rep.want(t, "network-policy", doctor.Warn, "enforcement not checked")

	// What it finds wrong: quota, limits, a policy that widens fences, a
	// missing Pod Security label, a permission taken away.
	ctx := context.Background()
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "tiny"}, Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceLimitsMemory: resource.MustParse("512Mi")}}}
	if _, err := env.cs.CoreV1().ResourceQuotas(ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	limits := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "small"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
		{Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}}}}
	if _, err := env.cs.CoreV1().LimitRanges(ns).Create(ctx, limits, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	allow := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-all"}, Spec: networkingv1.NetworkPolicySpec{
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}}
	if _, err := env.cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, allow, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "", "label", "namespace", ns, "pod-security.kubernetes.io/enforce-")
	kubectl(t, "", "-n", ns, "patch", "role", rbac.RoleName, "--type=json", `-p=[{"op":"replace","path":"/rules/0/verbs","value":["create","get","list","watch","delete"]}]`)
	waitForAccess(t, u, ns, rbacPermission(t, "patch pods"), false)
	eventually(t, 60e9, "the quota's status", func() bool {
		q, err := env.cs.CoreV1().ResourceQuotas(ns).Get(ctx, "tiny", metav1.GetOptions{})
		return err == nil && q.Status.Hard != nil
	})

	rep, r = runDoctor(t, u.kubeconfig, "-n", ns)
	if r.code == 0 || !strings.Contains(r.stderr, "findings failed") {
		t.Errorf("doctor succeeded on a namespace that cannot take a sandbox:\n%s", r)
	}
	rep.want(t, "namespace", doctor.Warn, "has no pod-security.kubernetes.io/enforce label")
	rep.want(t, "permissions", doctor.Fail, `may not patch pods in namespace "`+ns+`" (needed for: create: lift the scheduling gate`)
	rep.want(t, "admission", doctor.Fail, "refuses a default sandbox")
	rep.want(t, "limit-ranges", doctor.Fail, `LimitRange "small" refuses a default sandbox: cpu at most 500m per Container`)
	rep.want(t, "resource-quotas", doctor.Fail, `ResourceQuota "tiny" has no room for a default sandbox (limits.memory: 0 of 512Mi used`)
	rep.want(t, "other-policies", doctor.Warn, `NetworkPolicy "allow-all" selects new sandboxes and allows ingress`)

	// The probe cannot start its sandboxes here (quota): it says so and
	// leaves nothing behind.
	if err := env.cs.NetworkingV1().NetworkPolicies(ns).Delete(ctx, "allow-all", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, r = runDoctor(t, env.kubeconfig, "-n", ns, "--probe", "--timeout", "1m")
	rep.want(t, "network-policy", doctor.Warn, "could not run the probe")
	if !strings.Contains(r.stderr, "doctor: probe: starting sandbox/doctor-") {
		t.Errorf("the probe does not say what it does:\n%s", r)
	}
	assertNothingLeft(t, ns)

	// A namespace that does not exist.
	rep, _ = runDoctor(t, env.kubeconfig, "-n", "e2e-doctor-no-such-namespace")
	rep.want(t, "namespace", doctor.Fail, `namespace "e2e-doctor-no-such-namespace" does not exist`)
}
