package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/doctor"
	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// OpenShift, as a new user meets it: a project whose restricted-v2 SCC
// (the default for every authenticated user) admits a Pod only when its
// runAsUser lies in the project's openshift.io/sa.scc.uid-range and its
// fsGroup in openshift.io/sa.scc.supplemental-groups.
//
// Against a real OpenShift cluster (E2E_KUBECONFIG) the project is made
// as any namespace is and OpenShift annotates it. On the local control
// plane restricted-v2 is emulated with built-in admission: a
// ValidatingAdmissionPolicy written from the SCC's published definition
// (cluster-kube-apiserver-operator's scc-restricted-v2 manifest and the
// SCC documentation), whose control case proves it refuses what
// OpenShift refuses. What the emulation cannot do: mutate. restricted-v2
// also fills in a runAsUser, fsGroup, seccomp profile and dropped
// capabilities a Pod leaves out; sandboxes set all of them, so only the
// validation matters to them.
//
// Everything runs as a ServiceAccount bound to the plugin's Role (on
// OpenShift, restricted-v2 is all such a user may use).

// openshiftUIDs is the range the emulation gives its project (a real
// OpenShift picks its own).
const openshiftUIDs = "1000680000/10000"

func TestOpenShiftRestrictedV2(t *testing.T) {
	requireCluster(t)
	ns, ids := openshiftProject(t)
	first, last := ids.UIDs[0].Min, ids.UIDs[0].Max
	group := ids.GIDs[0].Min
	if ids.GIDs.Contains(first) {
		group = first
	}
	ranges := fmt.Sprintf("[%d, %d]", first, last)
	wantRunsAs := func(t *testing.T, name string, uid int64) {
		t.Helper()
		wantSandboxRunsAs(t, ns, name, uid, group)
	}
	agent := serviceAccountUser(t, ns, "agent")
	applyRBAC(t, "-n", ns, "--serviceaccount", ns+":agent")
	as := func(t *testing.T, args ...string) result {
		t.Helper()
		// -n before any "--": what follows it is the sandbox's command.
		i := slices.Index(args, "--")
		if i < 0 {
			i = len(args)
		}
		return pluginAs(t, agent.kubeconfig, "", slices.Concat(args[:i], []string{"-n", ns}, args[i:])...)
	}
	must := func(t *testing.T, args ...string) result {
		t.Helper()
		r := as(t, args...)
		if r.code != 0 {
			t.Fatalf("kubectl agentkernel %s:\n%s", strings.Join(args, " "), r)
		}
		return r
	}
	agentCS := clientsetOf(t, agent.kubeconfig)

	t.Run("control: the SCC refuses UID 1000 and fsGroup 1000, admits the range", func(t *testing.T) {
		pod := func(uid, fsGroup int64) *corev1.Pod {
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "control"}, Spec: corev1.PodSpec{
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(uid), FSGroup: ptr.To(fsGroup),
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				Containers: []corev1.Container{{Name: "c", Image: sandbox.DefaultImage, SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
			}}
		}
		create := func(p *corev1.Pod) error {
			_, err := agentCS.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}
		// The policy takes a moment to reach admission: until it refuses
		// UID 1000, nothing else here would prove anything.
		eventually(t, time.Minute, "the SCC refusing runAsUser 1000", func() bool {
			err := create(pod(1000, group))
			return err != nil && strings.Contains(err.Error(), "runAsUser: Invalid value: 1000: must be in the ranges: "+ranges)
		})
		if err := create(pod(first, 1000)); err == nil || !strings.Contains(err.Error(), "1000 is not an allowed group") {
			t.Errorf("fsGroup 1000 in the project: %v, want refused as not an allowed group", err)
		}
		if err := create(pod(last, group)); err != nil {
			t.Errorf("the last UID of the range is refused: %v", err)
		}
		if err := create(pod(last+1, group)); err == nil {
			t.Error("one UID past the range is admitted")
		}
	})

	t.Run("create with no flag runs as the project's first UID", func(t *testing.T) {
		must(t, "create", "os-a")
		wantRunsAs(t, "os-a", first)
		if !env.simulated { // the simulated node runs exec on this host, as itself
			r := must(t, "exec", "os-a", "--", "sh", "-c", `id -u; touch "$HOME/x" /workspace/x /tmp/x && echo "$USER $LOGNAME $HOME"`)
			if want := fmt.Sprintf("%d\nsandbox sandbox %s\n", first, sandbox.HomeDir); r.stdout != want {
				t.Errorf("in the sandbox: %q, want %q", r.stdout, want)
			}
		}
		must(t, "delete", "os-a")
	})

	t.Run("--uid in the range is kept", func(t *testing.T) {
		must(t, "create", "os-uid", "--uid", fmt.Sprint(first+42))
		wantSandboxRunsAs(t, ns, "os-uid", first+42, first+42) // the groups hold it
		must(t, "delete", "os-uid")
	})

	t.Run("--uid outside the range is refused before anything is made", func(t *testing.T) {
		eventuallyNothingLeft(t, ns) // what the sandboxes before left to the garbage collector
		r := as(t, "create", "os-out", "--uid", "1000")
		wantError(t, r, fmt.Sprintf(`--uid 1000 is outside the UIDs namespace %q admits (%d-%d`, ns, first, last))
		if !strings.Contains(r.stderr, fmt.Sprintf("leave --uid out to run as %d", first)) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("not one line saying what to do:\n%s", r)
		}
		assertNothingLeft(t, ns)
	})

	t.Run("run", func(t *testing.T) {
		must(t, "run", "--", "true")
		eventuallyNothingLeft(t, ns)
	})

	t.Run("pool create and a claim", func(t *testing.T) {
		must(t, "pool", "create", "os-pool", "--size", "1")
		tmpl, err := env.cs.CoreV1().PodTemplates(ns).Get(context.Background(), "agentkernel-pool-os-pool", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := *tmpl.Template.Spec.SecurityContext.RunAsUser; got != first {
			t.Errorf("the pool's members run as %d, want %d", got, first)
		}
		r := must(t, "create", "os-claim", "--pool", "os-pool")
		if !strings.Contains(r.stdout+r.stderr, "claimed warm from pool os-pool") {
			t.Errorf("not claimed from the pool:\n%s", r)
		}
		wantRunsAs(t, "os-claim", first)
		must(t, "delete", "os-claim")
		must(t, "pool", "delete", "os-pool")
	})

	t.Run("persistent workspace", func(t *testing.T) {
		if env.cluster != nil {
			freeVolume(t, ns)
		}
		must(t, "create", "os-persist", "--persist=1Gi")
		wantRunsAs(t, "os-persist", first)
		must(t, "delete", "os-persist")
	})

	t.Run("egress proxy and --allow-host", func(t *testing.T) {
		mustPlugin(t, "", "egress", "install", "-n", ns, "--api-server", "10.0.0.1:443") // an admin's
		d, err := env.cs.AppsV1().Deployments(ns).Get(context.Background(), "agentkernel-egress", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := *d.Spec.Template.Spec.SecurityContext.RunAsUser; got != first {
			t.Errorf("the proxy runs as %d, want %d", got, first)
		}
		// The Deployment is admitted whatever it says; its Pods are what
		// the SCC judges, made by the ReplicaSet controller.
		sel := labels.SelectorFromSet(sandbox.ProxyLabels()).String()
		eventually(t, 2*time.Minute, "a proxy Pod admitted", func() bool {
			pods, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
			return err == nil && len(pods.Items) > 0
		})
		must(t, "create", "os-host", "--allow-host", "example.com")
		wantRunsAs(t, "os-host", first)
		must(t, "delete", "os-host")
		mustPlugin(t, "", "egress", "uninstall", "-n", ns)
	})

	t.Run("doctor", func(t *testing.T) {
		r := as(t, "doctor", "-o", "json")
		var report struct{ Items []doctor.Result }
		if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
			t.Fatalf("doctor -o json: %v\n%s", err, r)
		}
		want := map[string]string{
			"uid-range": fmt.Sprintf("sandboxes run as UID %d, group %d", first, group),
			"admission": "passes admission unchanged",
		}
		for _, f := range report.Items {
			if w, ok := want[f.Check]; ok && f.Status == doctor.OK && strings.Contains(f.Found, w) {
				delete(want, f.Check)
			}
		}
		if len(want) > 0 {
			t.Errorf("doctor lacks %v:\n%s", want, r.stdout)
		}
	})

	// Last: it takes get namespaces from the Role.
	t.Run("a user who cannot read the namespace is told why, and --uid still works", func(t *testing.T) {
		subject, err := rbac.Subject("", "", ns+":agent")
		if err != nil {
			t.Fatal(err)
		}
		o := rbac.Options{Namespace: ns, Subject: subject, DNS: true}
		full := rbac.Objects(o)
		o.Without = []string{"get namespaces"}
		applyObjects(t, full, rbac.Objects(o))
		p, _ := rbac.Find("get namespaces")
		waitForAccess(t, agent, ns, p, false)
		eventuallyNothingLeft(t, ns)

		r := as(t, "create", "os-blind")
		wantError(t, r, "must be in the ranges: "+ranges)
		for _, want := range []string{`namespace "` + ns + `" could not be read to pick one (forbidden)`, "give a --uid in the range"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("the refusal does not say %q:\n%s", want, r)
			}
		}
		assertNothingLeft(t, ns)
		must(t, "create", "os-blind", "--uid", fmt.Sprint(first))
		wantRunsAs(t, "os-blind", first)
		must(t, "delete", "os-blind")
	})
}

// openshiftProject makes a namespace as OpenShift makes a project: on a
// real OpenShift its namespace controller annotates it; here the test
// does, and binds the emulated restricted-v2 to it alone.
func openshiftProject(t *testing.T) (string, *sandbox.NamespaceIDs) {
	t.Helper()
	ns := newNamespace(t)
	ctx := context.Background()
	var got *corev1.Namespace
	if isOpenShift(t) {
		eventually(t, time.Minute, "OpenShift's UID range on "+ns, func() bool {
			var err error
			got, err = env.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return err == nil && got.Annotations[sandbox.AnnotationSCCUIDRange] != ""
		})
		return ns, namespaceIDs(t, got)
	}
	got, err := env.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Annotations = map[string]string{
		sandbox.AnnotationSCCUIDRange:           openshiftUIDs,
		sandbox.AnnotationSCCSupplementalGroups: openshiftUIDs,
		sandbox.AnnotationSCCMCS:                "s0:c26,c15",
	}
	if got, err = env.cs.CoreV1().Namespaces().Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	emulateRestrictedV2(t, ns)
	return ns, namespaceIDs(t, got)
}

func namespaceIDs(t *testing.T, ns *corev1.Namespace) *sandbox.NamespaceIDs {
	t.Helper()
	ids, err := sandbox.NamespaceIDsOf(ns)
	if err != nil || ids == nil {
		t.Fatalf("namespace %s: no UID range (%v)", ns.Name, err)
	}
	return ids
}

func isOpenShift(t *testing.T) bool {
	t.Helper()
	groups, err := env.cs.Discovery().ServerGroups()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(groups.Groups, func(g metav1.APIGroup) bool { return g.Name == "security.openshift.io" })
}

// emulateRestrictedV2 binds, to namespace ns alone, a policy that refuses
// what restricted-v2 refuses, in OpenShift's words where it has them.
// From the SCC: runAsUser MustRunAsRange (the uid-range annotation),
// fsGroup MustRunAs (supplemental-groups, else uid-range; its first block
// here), seLinuxContext MustRunAs (the mcs annotation), no privileged
// container, allowPrivilegeEscalation false, capabilities added only
// NET_BIND_SERVICE, no host namespaces or ports, seccomp runtime/default,
// the volume types it lists. supplementalGroups is RunAsAny in
// restricted-v2, so not checked.
func emulateRestrictedV2(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	name := "e2e-restricted-v2-" + ns
	const (
		ann         = "namespaceObject.metadata.annotations"
		uidRange    = ann + "['" + sandbox.AnnotationSCCUIDRange + "']"
		groupsRange = "('" + sandbox.AnnotationSCCSupplementalGroups + "' in " + ann + " ? " + ann + "['" + sandbox.AnnotationSCCSupplementalGroups + "'] : " + uidRange + ")"
		podSC       = "object.spec.securityContext"
		all         = "variables.containers.all(c, "
		uidOK       = "variables.uidMin <= %[1]s.runAsUser && %[1]s.runAsUser <= variables.uidMax"
	)
	v := func(expr, msg string) admissionregistrationv1.Validation {
		return admissionregistrationv1.Validation{Expression: expr, MessageExpression: msg, Reason: ptr.To(metav1.StatusReasonForbidden)}
	}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
			}}},
			Variables: []admissionregistrationv1.Variable{
				{Name: "uidMin", Expression: "int(" + uidRange + ".split('/')[0])"},
				{Name: "uidMax", Expression: "int(" + uidRange + ".split('/')[0]) + int(" + uidRange + ".split('/')[1]) - 1"},
				{Name: "gidMin", Expression: "int(" + groupsRange + ".split(',')[0].split('/')[0])"},
				{Name: "gidMax", Expression: "int(" + groupsRange + ".split(',')[0].split('/')[0]) + int(" + groupsRange + ".split(',')[0].split('/')[1]) - 1"},
				{Name: "containers", Expression: "object.spec.containers + (has(object.spec.initContainers) ? object.spec.initContainers : [])"},
			},
			Validations: []admissionregistrationv1.Validation{
				v("!has("+podSC+") || !has("+podSC+".runAsUser) || "+fmt.Sprintf(uidOK, podSC),
					"'spec.securityContext.runAsUser: Invalid value: ' + string("+podSC+".runAsUser) + ': must be in the ranges: [' + string(variables.uidMin) + ', ' + string(variables.uidMax) + ']'"),
				v(all+"!has(c.securityContext) || !has(c.securityContext.runAsUser) || "+fmt.Sprintf(uidOK, "c.securityContext")+")",
					"'spec.containers[*].securityContext.runAsUser: Invalid value: must be in the ranges: [' + string(variables.uidMin) + ', ' + string(variables.uidMax) + ']'"),
				v("!has("+podSC+") || !has("+podSC+".fsGroup) || (variables.gidMin <= "+podSC+".fsGroup && "+podSC+".fsGroup <= variables.gidMax)",
					"'spec.securityContext.fsGroup: Invalid value: []int64{' + string("+podSC+".fsGroup) + '}: ' + string("+podSC+".fsGroup) + ' is not an allowed group'"),
				v("!has("+podSC+") || !has("+podSC+".seLinuxOptions) || !has("+podSC+".seLinuxOptions.level) || ('"+sandbox.AnnotationSCCMCS+"' in "+ann+" && "+podSC+".seLinuxOptions.level == "+ann+"['"+sandbox.AnnotationSCCMCS+"'])",
					"'spec.securityContext.seLinuxOptions.level: Invalid value: must be the project\\'s ' + '"+sandbox.AnnotationSCCMCS+"'"),
				v(all+"!has(c.securityContext) || !has(c.securityContext.privileged) || !c.securityContext.privileged)",
					"'spec.containers[*].securityContext.privileged: Invalid value: true: Privileged containers are not allowed'"),
				v(all+"!has(c.securityContext) || !has(c.securityContext.allowPrivilegeEscalation) || !c.securityContext.allowPrivilegeEscalation)",
					"'spec.containers[*].securityContext.allowPrivilegeEscalation: Invalid value: true: Allowing privilege escalation for containers is not allowed'"),
				v(all+"!has(c.securityContext) || !has(c.securityContext.capabilities) || !has(c.securityContext.capabilities.add) || c.securityContext.capabilities.add.all(a, a == 'NET_BIND_SERVICE'))",
					"'spec.containers[*].securityContext.capabilities.add: Invalid value: capability may not be added (only NET_BIND_SERVICE)'"),
				v(all+"!has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0))",
					"'spec.containers[*].ports.hostPort: Invalid value: Host ports are not allowed to be used'"),
				v("!(has(object.spec.hostNetwork) && object.spec.hostNetwork) && !(has(object.spec.hostPID) && object.spec.hostPID) && !(has(object.spec.hostIPC) && object.spec.hostIPC)",
					"'spec.securityContext: Invalid value: Host network, PID and IPC are not allowed to be used'"),
				v("!has("+podSC+") || !has("+podSC+".seccompProfile) || "+podSC+".seccompProfile.type == 'RuntimeDefault'",
					"'spec.securityContext.seccompProfile.type: Invalid value: ' + "+podSC+".seccompProfile.type + ': runtime/default is the only profile allowed'"),
				v(all+"!has(c.securityContext) || !has(c.securityContext.seccompProfile) || c.securityContext.seccompProfile.type == 'RuntimeDefault')",
					"'spec.containers[*].securityContext.seccompProfile.type: Invalid value: runtime/default is the only profile allowed'"),
				v("!has(object.spec.volumes) || object.spec.volumes.all(v, has(v.configMap) || has(v.csi) || has(v.downwardAPI) || has(v.emptyDir) || has(v.ephemeral) || has(v.image) || has(v.persistentVolumeClaim) || has(v.projected) || has(v.secret))",
					"'spec.volumes: Invalid value: a volume type restricted-v2 does not allow'"),
			},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
		},
	}
	policies := env.cs.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	bindings := env.cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	if _, err := policies.Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := policies.Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting the emulated SCC: %v", err)
		}
	})
	if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bindings.Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting the emulated SCC's binding: %v", err)
		}
	})
	// A policy whose expressions do not type-check says so in its status.
	eventually(t, time.Minute, "the emulated SCC type-checked", func() bool {
		got, err := policies.Get(ctx, name, metav1.GetOptions{})
		if err != nil || got.Status.ObservedGeneration != got.Generation {
			return false
		}
		if got.Status.TypeChecking != nil && len(got.Status.TypeChecking.ExpressionWarnings) > 0 {
			t.Fatalf("the emulated SCC does not type-check: %+v", got.Status.TypeChecking.ExpressionWarnings)
		}
		return true
	})
}

func clientsetOf(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// wantSandboxRunsAs checks the sandbox's Pod as the API server stored it:
// admission had its say, and this is what the kubelet runs.
func wantSandboxRunsAs(t *testing.T, ns, name string, uid, fsGroup int64) {
	t.Helper()
	pods, err := env.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{sandbox.LabelSandbox: name}).String()})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("sandbox %s: %d pods, %v", name, len(pods.Items), err)
	}
	pod := pods.Items[0].Name
	sc := pods.Items[0].Spec.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != uid || sc.FSGroup == nil || *sc.FSGroup != fsGroup || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("pod %s runs as %+v, want runAsUser %d, fsGroup %d, runAsNonRoot", pod, sc, uid, fsGroup)
	}
}
