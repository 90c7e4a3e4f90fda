package doctor

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// cluster is a fake API server for the checks: a version, a user, an
// authorizer that denies what deny lists ("verb resource in namespace",
// namespace "" for the cluster), on the one fake API server
// (internal/fakecluster), whose dry runs store nothing.
func cluster(t *testing.T, gitVersion string, deny []string, objects ...runtime.Object) *fake.Clientset {
	t.Helper()
	cs := fakecluster.New(objects...)
	cs.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: gitVersion}
	cs.PrependReactor("create", "selfsubjectreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, &authenticationv1.SelfSubjectReview{Status: authenticationv1.SelfSubjectReviewStatus{
			UserInfo: authenticationv1.UserInfo{Username: "alice", Groups: []string{"devs", "system:authenticated"}}}}, nil
	})
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		attrs := r.Spec.ResourceAttributes
		res := attrs.Resource
		if attrs.Subresource != "" {
			res += "/" + attrs.Subresource
		}
		r.Status.Allowed = true
		for _, d := range deny {
			if d == attrs.Verb+" "+res+" in "+attrs.Namespace {
				r.Status.Allowed = false
			}
		}
		return true, r, nil
	})
	return cs
}

func restrictedNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
}

// byCheck gathers the report's lines per check.
func byCheck(results []Result) map[string][]Result {
	m := map[string][]Result{}
	for _, r := range results {
		m[r.Check] = append(m[r.Check], r)
	}
	return m
}

func wantLine(t *testing.T, results []Result, check string, status Status, found string) {
	t.Helper()
	for _, r := range byCheck(results)[check] {
		if r.Status == status && strings.Contains(r.Found, found) {
			if status != OK && r.Action == "" {
				t.Errorf("%s %s says what it found but not what to do: %s", status, check, r.Found)
			}
			return
		}
	}
	t.Errorf("no %s line of %s saying %q in:\n%s", status, check, found, report(results))
}

func report(results []Result) string {
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "  %s %s %s -> %s\n", r.Status, r.Check, r.Found, r.Action)
	}
	return b.String()
}

func TestAHealthyNamespace(t *testing.T) {
	dns := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"k8s-app": "kube-dns"}, Ports: []corev1.ServicePort{{Port: 53, Protocol: corev1.ProtocolUDP}}}}
	gvisor := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "gvisor"}, Handler: "runsc"}
	standard := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "standard", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner: "rancher.io/local-path", VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
	cs := cluster(t, "v1.37.2", nil, restrictedNamespace("agents"), dns, gvisor, standard)
	results := Run(context.Background(), &Env{Clientset: cs, Namespace: "agents", Server: "https://k8s"})
	for _, r := range results {
		if r.Status != OK && r.Check != "network-policy" {
			t.Errorf("%s %s: %s", r.Status, r.Check, r.Found)
		}
	}
	wantLine(t, results, "api-server", OK, "https://k8s answers: Kubernetes v1.37.2")
	wantLine(t, results, "identity", OK, "you are alice")
	wantLine(t, results, "namespace", OK, "enforces restricted")
	wantLine(t, results, "permissions", OK, "may create pods/exec in namespace \"agents\"")
	wantLine(t, results, "runtime-classes", OK, "gvisor (gVisor, handler runsc)")
	wantLine(t, results, "storage", OK, "default StorageClass standard (provisioner rancher.io/local-path, binds WaitForFirstConsumer, no volume expansion)")
	wantLine(t, results, "dns", OK, "Service kube-system/kube-dns: pods k8s-app=kube-dns in kube-system, ports 53/UDP")
	wantLine(t, results, "network-policy", Warn, "enforcement not checked")
	if Failed(results) != 0 {
		t.Errorf("failed = %d", Failed(results))
	}
}

func TestWhatFailsAndWhatWarns(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "agents", Labels: map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}}}
	limits := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: "agents", Name: "small-containers"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
		{Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}},
	}}}
	full := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "agents", Name: "compute"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceLimitsCPU: resource.MustParse("4")}},
		Status: corev1.ResourceQuotaStatus{Hard: corev1.ResourceList{corev1.ResourceLimitsCPU: resource.MustParse("4")},
			Used: corev1.ResourceList{corev1.ResourceLimitsCPU: resource.MustParse("3500m")}}}
	roomy := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "agents", Name: "objects"},
		Status: corev1.ResourceQuotaStatus{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10"), corev1.ResourceMemory: resource.MustParse("8Gi")},
			Used: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("5Gi")}}}
	terminating := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "agents", Name: "batch"},
		Spec:   corev1.ResourceQuotaSpec{Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating}},
		Status: corev1.ResourceQuotaStatus{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}
	allowAll := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "agents", Name: "allow-all-egress"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, Egress: []networkingv1.NetworkPolicyEgressRule{{}}}}
	other := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nvidia"}, Handler: "nvidia"}
	cs := cluster(t, "v1.37.2", []string{"patch pods in agents", "create pods/exec in agents", "list pods in "}, ns, limits, full, roomy, terminating, allowAll, other)
	results := Run(context.Background(), &Env{Clientset: cs, Namespace: "agents", Server: "https://k8s"})

	wantLine(t, results, "namespace", Warn, "enforces baseline")
	wantLine(t, results, "permissions", Fail, "may not patch pods in namespace \"agents\" (needed for: create: lift the scheduling gate")
	wantLine(t, results, "permissions", Fail, "may not create pods/exec")
	wantLine(t, results, "permissions", Warn, "may not list pods in every namespace (optional")
	wantLine(t, results, "limit-ranges", Fail, `LimitRange "small-containers" refuses a default sandbox: memory at most 512Mi per Container`)
	wantLine(t, results, "resource-quotas", Fail, `ResourceQuota "compute" has no room for a default sandbox (limits.cpu: 3500m of 4 used`)
	wantLine(t, results, "resource-quotas", OK, `ResourceQuota "objects" has room for 3 more default sandbox(es) (tightest: memory: 5Gi of 8Gi used`)
	wantLine(t, results, "resource-quotas", OK, `ResourceQuota "batch" does not count default sandboxes`)
	wantLine(t, results, "runtime-classes", Warn, "no gVisor or Kata RuntimeClass, only: nvidia")
	wantLine(t, results, "dns", Warn, "no Service kube-system/kube-dns")
	wantLine(t, results, "other-policies", Warn, `NetworkPolicy "allow-all-egress" selects new sandboxes and allows egress`)
	for _, r := range byCheck(results)["permissions"] {
		if r.Status == Fail && !strings.Contains(r.Action, "kubectl agentkernel rbac -n agents --user alice") {
			t.Errorf("the fix names no Role to apply: %s", r.Action)
		}
	}
	if Failed(results) != 4 {
		t.Errorf("failed = %d, want 4:\n%s", Failed(results), report(results))
	}
}

// Where a persistent sandbox's workspace comes from: no class, no default,
// two defaults, a class that cannot be listed.
func TestStorageClasses(t *testing.T) {
	class := func(name string, isDefault bool) *storagev1.StorageClass {
		sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "csi.example.com", AllowVolumeExpansion: ptr.To(true)}
		if isDefault {
			sc.Annotations = map[string]string{"storageclass.beta.kubernetes.io/is-default-class": "true"}
		}
		return sc
	}
	for _, c := range []struct {
		name    string
		objects []runtime.Object
		deny    []string
		status  Status
		found   string
	}{
		{"none", nil, nil, Warn, "no StorageClass"},
		{"no default", []runtime.Object{class("slow", false), class("fast", false)}, nil, Warn, "no default StorageClass, only: fast, slow"},
		{"two defaults", []runtime.Object{class("a", true), class("b", true)}, nil, Warn, "2 StorageClasses are marked default"},
		{"beta default", []runtime.Object{class("a", true)}, nil, OK, "a (provisioner csi.example.com, binds Immediate, volumes can grow)"},
		{"forbidden", nil, []string{"list storageclasses in "}, Warn, "cannot list StorageClasses"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := cluster(t, "v1.37.2", nil, c.objects...)
			if len(c.deny) > 0 {
				cs.PrependReactor("list", "storageclasses", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}, "", fmt.Errorf("denied"))
				})
			}
			wantLine(t, checkStorage(context.Background(), &Env{Clientset: cs, Namespace: "agents"}), "", c.status, c.found)
		})
	}
}

func TestUnreachableOrOldAPIServer(t *testing.T) {
	cs := cluster(t, "", nil)
	cs.Discovery().(*fakediscovery.FakeDiscovery).PrependReactor("get", "version", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, fmt.Errorf("dial tcp 127.0.0.1:1: connect: connection refused")
	})
	results := Run(context.Background(), &Env{Clientset: cs, Namespace: "agents", Server: "https://127.0.0.1:1"})
	if len(results) != 1 || results[0].Status != Fail || !strings.Contains(results[0].Found, "cannot reach the API server at https://127.0.0.1:1") {
		t.Errorf("an unreachable server: want one failure and nothing else:\n%s", report(results))
	}
	old := Run(context.Background(), &Env{Clientset: cluster(t, "v1.26.3", nil, restrictedNamespace("agents")), Namespace: "agents"})
	wantLine(t, old, "api-server", Fail, "no Pod scheduling gates")
	missing := Run(context.Background(), &Env{Clientset: cluster(t, "v1.37.2", nil), Namespace: "agents"})
	wantLine(t, missing, "namespace", Fail, `namespace "agents" does not exist`)
}

func TestAdmissionThatChangesTheSandbox(t *testing.T) {
	cs := cluster(t, "v1.37.2", nil, restrictedNamespace("agents"))
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod).DeepCopy()
		pod.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory] = resource.MustParse("512Mi")
		return true, pod, nil
	})
	results := checkAdmission(context.Background(), &Env{Clientset: cs, Namespace: "agents"})
	wantLine(t, results, "", Warn, "changes it: limits.memory 1Gi → 512Mi")
}

func TestQuotaScopes(t *testing.T) {
	q := func(scopes []corev1.ResourceQuotaScope, sel ...corev1.ScopedResourceSelectorRequirement) *corev1.ResourceQuota {
		r := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Scopes: scopes}}
		if len(sel) > 0 {
			r.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: sel}
		}
		return r
	}
	cases := map[string]struct {
		q    *corev1.ResourceQuota
		want bool
	}{
		"no scopes":        {q(nil), true},
		"NotTerminating":   {q([]corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeNotBestEffort}), true},
		"Terminating":      {q([]corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating}), false},
		"BestEffort":       {q([]corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}), false},
		"priority class":   {q(nil, corev1.ScopedResourceSelectorRequirement{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"high"}}), false},
		"priority not in":  {q(nil, corev1.ScopedResourceSelectorRequirement{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpNotIn, Values: []string{"high"}}), true},
		"no priority":      {q(nil, corev1.ScopedResourceSelectorRequirement{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpDoesNotExist}), true},
		"selector BestEff": {q(nil, corev1.ScopedResourceSelectorRequirement{ScopeName: corev1.ResourceQuotaScopeBestEffort, Operator: corev1.ScopeSelectorOpExists}), false},
	}
	for name, c := range cases {
		if got := quotaCountsSandboxes(c.q); got != c.want {
			t.Errorf("%s: counts sandboxes = %v, want %v", name, got, c.want)
		}
	}
}

// network is the probe's view of a cluster's network: whether the client
// reaches the server on port i (0: allowed by policy, 1: through the public
// rule to a private address, 2: no rule), try by try.
type network struct {
	mu     sync.Mutex
	token  string
	ports  []string
	tries  map[string]int
	reach  func(port, try int) bool
	noHTTP bool
	broken bool // exec into the client fails (not nc: the stream)
}

type runner struct {
	n   *network
	pod *corev1.Pod
}

func (r runner) Run(_ context.Context, cmd []string, _ io.Reader, stdout, _ io.Writer) error {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	switch cmd[2] {
	case probeScript:
		r.n.token, r.n.ports = cmd[3], cmd[4:7]
		if !r.n.noHTTP {
			_, _ = io.WriteString(stdout, "HTTP/1.0 200 OK\r\n\r\n"+r.n.token+"\n")
		}
	case connectScript:
		if r.n.broken {
			return fmt.Errorf("error dialing backend: EOF")
		}
		port := -1
		for i, p := range r.n.ports {
			if p == cmd[4] {
				port = i
			}
		}
		try := r.n.tries[cmd[4]]
		r.n.tries[cmd[4]]++
		if r.n.reach(port, try) {
			_, _ = io.WriteString(stdout, r.n.token)
		} else {
			_, _ = io.WriteString(stdout, "nc: timed out")
		}
	default:
		return fmt.Errorf("unexpected command %q", cmd)
	}
	return nil
}

// probeCluster is a fake API server whose Pods run at once, with an IP.
func probeCluster(t *testing.T, ip string) *fake.Clientset {
	cs := cluster(t, "v1.37.2", nil, restrictedNamespace("agents"))
	n := 0
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		n++
		pod.UID = types.UID(fmt.Sprint("uid-", n))
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		return false, nil, nil
	})
	return cs
}

func TestProbe(t *testing.T) {
	probeWindow, probeEvery = 50*time.Millisecond, time.Millisecond
	t.Cleanup(func() { probeWindow, probeEvery = 30*time.Second, time.Second })
	cases := []struct {
		what   string
		ip     string
		reach  func(port, try int) bool
		noHTTP bool
		status Status
		found  string
		broken bool
	}{
		{"enforced", "10.244.0.7", func(p, _ int) bool { return p == 0 }, false, OK, "enforced: a fenced sandbox reached an unfenced one (10.244.0.7) only on the port its policy allows", false},
		{"not enforced", "10.244.0.7", func(int, int) bool { return true }, false, Fail, "NetworkPolicy is NOT enforced", false},
		{"except ignored", "10.244.0.7", func(p, _ int) bool { return p != 2 }, false, Fail, "private addresses are NOT blocked", false},
		{"public pod IPs", "93.184.216.34", func(p, _ int) bool { return p != 2 }, false, OK, "the Pod address is not private", false},
		{"late fence", "10.244.0.7", func(p, try int) bool { return p == 0 || (p == 2 && try == 0) }, false, Warn, "only some seconds after the sandbox started", false},
		{"no pod network", "10.244.0.7", func(int, int) bool { return false }, false, Warn, "cannot tell", false},
		{"no httpd in the image", "10.244.0.7", func(int, int) bool { return true }, true, Warn, "the listener in sandbox", false},
		// A failed exec is no refusal: it must never read as "enforced".
		{"exec fails", "10.244.0.7", func(p, _ int) bool { return p == 0 }, false, Warn, "cannot tell whether NetworkPolicy is enforced: running nc", true},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			cs := probeCluster(t, c.ip)
			n := &network{tries: map[string]int{}, reach: c.reach, noHTTP: c.noHTTP, broken: c.broken}
			env := &Env{Clientset: cs, Namespace: "agents", Probe: &Probe{Timeout: time.Minute, Exec: func(p *corev1.Pod) sandbox.Runner { return runner{n, p} }}}
			r := checkNetworkPolicy(context.Background(), env)
			wantLine(t, r, "", c.status, c.found)
			pods, _ := cs.CoreV1().Pods("agents").List(context.Background(), metav1.ListOptions{})
			if len(pods.Items) != 0 {
				t.Errorf("the probe left %d pods behind", len(pods.Items))
			}
		})
	}
}

// The probe's client may reach the server on the first port by its
// labels, and all public addresses on the second; nothing on the third.
func TestProbeClientPolicy(t *testing.T) {
	cs := probeCluster(t, "10.244.0.7")
	var policy *networkingv1.NetworkPolicy
	cs.PrependReactor("create", "networkpolicies", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if np := a.(k8stesting.CreateAction).GetObject().(*networkingv1.NetworkPolicy); strings.HasSuffix(np.Name, "-client") {
			policy = np.DeepCopy()
		}
		return false, nil, nil
	})
	n := &network{tries: map[string]int{}, reach: func(p, _ int) bool { return p == 0 }}
	env := &Env{Clientset: cs, Namespace: "agents", Probe: &Probe{Exec: func(p *corev1.Pod) sandbox.Runner { return runner{n, p} }}}
	checkNetworkPolicy(context.Background(), env)
	if policy == nil || len(policy.Spec.Egress) != 3 {
		t.Fatalf("client policy: %+v", policy)
	}
	first := policy.Spec.Egress[0]
	if first.To[0].PodSelector == nil || !strings.HasSuffix(first.To[0].PodSelector.MatchLabels[sandbox.LabelSandbox], "-server") ||
		first.Ports[0].Port.String() != n.ports[0] {
		t.Errorf("the first rule is not the server by label on the first port: %+v", first)
	}
	second := policy.Spec.Egress[1]
	if second.To[0].IPBlock == nil || second.To[0].IPBlock.CIDR != "0.0.0.0/0" || len(second.To[0].IPBlock.Except) == 0 || *second.Ports[0].Port != intstr.Parse(n.ports[1]) {
		t.Errorf("the second rule is not the public internet on the second port: %+v", second)
	}
}
