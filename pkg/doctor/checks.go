package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilversion "k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/version"

	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// minVersion: scheduling gates, which keep a sandbox from running before
// its NetworkPolicy exists, are on by default from Kubernetes 1.27 (GA in
// 1.30). An older API server drops the gate, and the Pod could start unfenced.
var minVersion = utilversion.MajorMinor(1, 27)

func checkAPIServer(ctx context.Context, env *Env) []Result {
	type answer struct {
		v   *version.Info
		err error
	}
	done := make(chan answer, 1)
	go func() {
		v, err := env.Clientset.Discovery().ServerVersion()
		done <- answer{v, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.err = context.Cause(ctx)
	case <-time.After(30 * time.Second):
		a.err = fmt.Errorf("no answer within 30s")
	}
	if a.err != nil {
		return []Result{fail(fmt.Sprintf("cannot reach the API server at %s: %v", env.Server, a.err),
			"check that the cluster is up and that --context/--kubeconfig point at it (kubectl cluster-info)")}
	}
	found := fmt.Sprintf("%s answers: Kubernetes %s", env.Server, a.v.GitVersion)
	if v, err := utilversion.ParseGeneric(a.v.GitVersion); err == nil && v.LessThan(minVersion) {
		return []Result{fail(found+"; older than 1.27, it has no Pod scheduling gates, so a sandbox could run before its NetworkPolicy exists",
			"use a cluster of Kubernetes 1.27 or later")}
	}
	return []Result{ok("%s", found)}
}

func checkIdentity(ctx context.Context, env *Env) []Result {
	r, err := env.Clientset.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || r == nil || r.Status.UserInfo.Username == "" {
		return []Result{warn(fmt.Sprintf("cannot tell who you are (SelfSubjectReview: %v)", err), "nothing to do; it needs Kubernetes 1.28 or later")}
	}
	env.user = r.Status.UserInfo.Username
	groups := r.Status.UserInfo.Groups
	if len(groups) > 6 {
		groups = append(groups[:6:6], fmt.Sprintf("and %d more", len(r.Status.UserInfo.Groups)-6))
	}
	return []Result{ok("you are %s (groups: %s)", env.user, strings.Join(groups, ", "))}
}

const (
	labelEnforce        = "pod-security.kubernetes.io/enforce"
	labelEnforceVersion = "pod-security.kubernetes.io/enforce-version"
)

func checkNamespace(ctx context.Context, env *Env) []Result {
	ns, err := env.Clientset.CoreV1().Namespaces().Get(ctx, env.Namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return []Result{fail(fmt.Sprintf("namespace %q does not exist", env.Namespace),
			fmt.Sprintf("create it (kubectl create namespace %s), or let create make it: kubectl agentkernel create NAME -n %s --create-namespace", env.Namespace, env.Namespace))}
	case err != nil:
		return []Result{warn(fmt.Sprintf("cannot read namespace %q: %v", env.Namespace, err), env.rbacHint())}
	}
	level, ver := ns.Labels[labelEnforce], ns.Labels[labelEnforceVersion]
	if ver == "" {
		ver = "latest"
	}
	label := fmt.Sprintf("kubectl label namespace %s %s=restricted --overwrite", env.Namespace, labelEnforce)
	switch level {
	case "restricted":
		return []Result{ok("namespace %q: Pod Security enforces restricted (version %s)", env.Namespace, ver)}
	case "":
		return []Result{warn(fmt.Sprintf("namespace %q has no %s label: the cluster's default level applies (usually privileged), so other Pods here need not be hardened (sandboxes are, either way)", env.Namespace, labelEnforce), label)}
	}
	return []Result{warn(fmt.Sprintf("namespace %q: Pod Security enforces %s (version %s), not restricted: other Pods here may be less hardened than sandboxes", env.Namespace, level, ver), label)}
}

// checkPermissions asks the API server, for each permission the plugin
// uses, whether this user has it: one line per resource.
func checkPermissions(ctx context.Context, env *Env) []Result {
	perms := rbac.Permissions
	allowed := make([]bool, len(perms))
	errs := make([]error, len(perms))
	var wg sync.WaitGroup
	for i, p := range perms {
		wg.Go(func() { allowed[i], errs[i] = env.canI(ctx, p) })
	}
	wg.Wait()

	type group struct {
		scope         rbac.Scope
		resource      string
		has, lacks    []string
		why, problems []string
	}
	var groups []*group
	byKey := map[string]*group{}
	for i, p := range perms {
		key := string(p.Scope) + " " + p.GroupResource()
		g := byKey[key]
		if g == nil {
			g = &group{scope: p.Scope, resource: p.GroupResource()}
			byKey[key] = g
			groups = append(groups, g)
		}
		switch {
		case errs[i] != nil:
			g.problems = append(g.problems, fmt.Sprintf("%s: %v", p.Verb, errs[i]))
		case allowed[i]:
			g.has = append(g.has, p.Verb)
		default:
			g.lacks = append(g.lacks, p.Verb)
			g.why = append(g.why, p.Why)
		}
	}
	var out []Result
	for _, g := range groups {
		where := fmt.Sprintf("in namespace %q", env.Namespace)
		switch g.scope {
		case rbac.Cluster:
			where = "in every namespace"
		case rbac.ClusterDNS:
			where = "in namespace " + rbac.DNSNamespace
		}
		switch {
		case len(g.problems) > 0:
			out = append(out, warn(fmt.Sprintf("%s %s: cannot check: %s", g.resource, where, strings.Join(g.problems, "; ")), "run doctor again; if it persists, check with: kubectl auth can-i --list -n "+env.Namespace))
		case len(g.lacks) == 0:
			out = append(out, ok("may %s %s %s", strings.Join(g.has, ", "), g.resource, where))
		case g.scope == "" || g.scope == rbac.Namespace:
			out = append(out, fail(fmt.Sprintf("may not %s %s %s (needed for: %s)", strings.Join(g.lacks, ", "), g.resource, where, strings.Join(g.why, "; ")), env.rbacHint()))
		default:
			out = append(out, warn(fmt.Sprintf("may not %s %s %s (optional, for: %s)", strings.Join(g.lacks, ", "), g.resource, where, strings.Join(g.why, "; ")),
				env.rbacHint()+" (with --all-namespaces for the cluster-wide part)"))
		}
	}
	return out
}

// canI asks a SelfSubjectAccessReview; a permission on named objects only
// counts when every one of them is allowed.
func (e *Env) canI(ctx context.Context, p rbac.Permission) (bool, error) {
	resource, sub, _ := strings.Cut(p.Resource, "/")
	attrs := authorizationv1.ResourceAttributes{Verb: p.Verb, Group: p.Group, Resource: resource, Subresource: sub}
	switch p.Scope {
	case rbac.Cluster:
	case rbac.ClusterDNS:
		attrs.Namespace = rbac.DNSNamespace
	default:
		attrs.Namespace = e.Namespace
	}
	names := p.ResourceNames
	if p.Resource == "namespaces" {
		names = []string{e.Namespace} // a Role grants its own namespace only
	}
	if len(names) == 0 {
		names = []string{""}
	}
	for _, name := range names {
		a := attrs
		a.Name = name
		r, err := e.Clientset.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &a},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		if !r.Status.Allowed {
			return false, nil
		}
	}
	return true, nil
}

// defaultSandbox is what create makes without flags.
func defaultSandbox(namespace string) sandbox.Spec {
	return sandbox.NewSpec("doctor-"+sandbox.RandomHex(3), namespace)
}

func describeResources(s sandbox.Spec) string {
	return fmt.Sprintf("%s CPU, %s memory, %s ephemeral storage", s.CPU.String(), s.Memory.String(), s.EphemeralStorage.String())
}

// checkAdmission sends a default sandbox as a server-side dry run: Pod
// Security, LimitRanges, ResourceQuotas and admission webhooks all see it,
// nothing is stored. What comes back shows whether admission changed it.
func checkAdmission(ctx context.Context, env *Env) []Result {
	spec := defaultSandbox(env.Namespace)
	created, err := sandbox.Create(ctx, env.Clientset, &spec, sandbox.CreateOptions{ServerDryRun: true})
	what := "a default sandbox (" + describeResources(spec) + ")"
	if err != nil {
		action := "fix what the message names, or create sandboxes that fit (--cpu, --memory, --ephemeral-storage)"
		switch msg := err.Error(); {
		case strings.Contains(msg, "exceeded quota"):
			action = "free quota, ask for more, or create smaller sandboxes (--cpu, --memory, --ephemeral-storage)"
		case strings.Contains(msg, "cannot create resource"):
			action = env.rbacHint()
		case strings.Contains(msg, "violates PodSecurity"):
			action = "the namespace's Pod Security level refuses even restricted Pods: check its labels and the cluster's admission configuration"
		}
		return []Result{fail(fmt.Sprintf("the API server refuses %s (server-side dry run): %v", what, err), action)}
	}
	if changes := resourceChanges(spec.Pod(), created.Pod); len(changes) > 0 {
		return []Result{warn(fmt.Sprintf("admission accepts %s but changes it: %s", what, strings.Join(changes, ", ")),
			"find the mutating webhook or policy that does it (kubectl get mutatingwebhookconfigurations) if sandboxes must get what they ask for")}
	}
	return []Result{ok("%s passes admission unchanged: Pod Security, LimitRanges, ResourceQuotas, webhooks (server-side dry run)", what)}
}

// resourceChanges lists what admission changed in the sandbox container's
// requests and limits.
func resourceChanges(sent, got *corev1.Pod) []string {
	if got == nil || len(got.Spec.Containers) == 0 {
		return nil
	}
	var changes []string
	s, g := sent.Spec.Containers[0].Resources, got.Spec.Containers[0].Resources
	for _, side := range []struct {
		name      string
		sent, got corev1.ResourceList
	}{{"requests", s.Requests, g.Requests}, {"limits", s.Limits, g.Limits}} {
		for _, r := range sortedNames(side.sent, side.got) {
			a, b := side.sent[r], side.got[r]
			if a.Cmp(b) != 0 {
				changes = append(changes, fmt.Sprintf("%s.%s %s → %s", side.name, r, orNone(a), orNone(b)))
			}
		}
	}
	return changes
}

func orNone(q resource.Quantity) string {
	if q.IsZero() {
		return "none"
	}
	return q.String()
}

func sortedNames(lists ...corev1.ResourceList) []corev1.ResourceName {
	seen := map[corev1.ResourceName]bool{}
	var names []corev1.ResourceName
	for _, l := range lists {
		for r := range l {
			if !seen[r] {
				seen[r] = true
				names = append(names, r)
			}
		}
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}

var resourceFlags = map[corev1.ResourceName]string{
	corev1.ResourceCPU:              "--cpu",
	corev1.ResourceMemory:           "--memory",
	corev1.ResourceEphemeralStorage: "--ephemeral-storage",
}

func checkLimitRanges(ctx context.Context, env *Env) []Result {
	list, err := env.Clientset.CoreV1().LimitRanges(env.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Result{warn("cannot list LimitRanges: "+err.Error(), env.rbacHint())}
	}
	if len(list.Items) == 0 {
		return []Result{ok("no LimitRange in namespace %q", env.Namespace)}
	}
	spec := defaultSandbox(env.Namespace)
	want := corev1.ResourceList{corev1.ResourceCPU: spec.CPU, corev1.ResourceMemory: spec.Memory, corev1.ResourceEphemeralStorage: spec.EphemeralStorage}
	var out []Result
	for _, lr := range list.Items {
		var problems, flags []string
		for _, item := range lr.Spec.Limits {
			if item.Type != corev1.LimitTypeContainer && item.Type != corev1.LimitTypePod {
				continue
			}
			for _, r := range sortedNames(want) {
				need := want[r]
				if max, ok := item.Max[r]; ok && need.Cmp(max) > 0 {
					problems = append(problems, fmt.Sprintf("%s at most %s per %s, a default sandbox asks %s", r, max.String(), item.Type, need.String()))
					flags = append(flags, resourceFlags[r]+" "+max.String())
				}
				if min, ok := item.Min[r]; ok && need.Cmp(min) < 0 {
					problems = append(problems, fmt.Sprintf("%s at least %s per %s, a default sandbox asks %s", r, min.String(), item.Type, need.String()))
					flags = append(flags, resourceFlags[r]+" "+min.String())
				}
			}
		}
		if len(problems) > 0 {
			out = append(out, fail(fmt.Sprintf("LimitRange %q refuses a default sandbox: %s", lr.Name, strings.Join(problems, "; ")),
				"create sandboxes that fit ("+strings.Join(flags, " ")+") or ask an admin to change the LimitRange"))
		} else {
			out = append(out, ok("LimitRange %q admits a default sandbox (%s)", lr.Name, describeResources(spec)))
		}
	}
	return out
}

// quotaNeeds is what one default sandbox counts against a ResourceQuota.
func quotaNeeds(s sandbox.Spec) corev1.ResourceList {
	one := resource.MustParse("1")
	return corev1.ResourceList{
		corev1.ResourcePods: one, "count/pods": one,
		corev1.ResourceRequestsCPU: s.CPU, corev1.ResourceLimitsCPU: s.CPU, corev1.ResourceCPU: s.CPU,
		corev1.ResourceRequestsMemory: s.Memory, corev1.ResourceLimitsMemory: s.Memory, corev1.ResourceMemory: s.Memory,
		corev1.ResourceRequestsEphemeralStorage: s.EphemeralStorage, corev1.ResourceLimitsEphemeralStorage: s.EphemeralStorage, corev1.ResourceEphemeralStorage: s.EphemeralStorage,
		"count/networkpolicies.networking.k8s.io": one,
	}
}

func checkResourceQuotas(ctx context.Context, env *Env) []Result {
	list, err := env.Clientset.CoreV1().ResourceQuotas(env.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Result{warn("cannot list ResourceQuotas: "+err.Error(), env.rbacHint())}
	}
	if len(list.Items) == 0 {
		return []Result{ok("no ResourceQuota in namespace %q", env.Namespace)}
	}
	needs := quotaNeeds(defaultSandbox(env.Namespace))
	var out []Result
	for _, q := range list.Items {
		if !quotaCountsSandboxes(&q) {
			out = append(out, ok("ResourceQuota %q does not count default sandboxes (its scopes)", q.Name))
			continue
		}
		hard := q.Status.Hard
		if hard == nil {
			hard = q.Spec.Hard
		}
		room, tightest := int64(-1), ""
		for _, r := range sortedNames(hard) {
			need, counted := needs[r]
			if !counted {
				continue
			}
			left := hard[r].DeepCopy()
			left.Sub(q.Status.Used[r])
			n := int64(0)
			if left.Sign() > 0 {
				n = left.MilliValue() / need.MilliValue()
			}
			if room < 0 || n < room {
				used := q.Status.Used[r]
				h := hard[r]
				room, tightest = n, fmt.Sprintf("%s: %s of %s used, a default sandbox needs %s", r, used.String(), h.String(), need.String())
			}
		}
		switch {
		case room < 0:
			out = append(out, ok("ResourceQuota %q counts nothing a default sandbox uses", q.Name))
		case room == 0:
			out = append(out, fail(fmt.Sprintf("ResourceQuota %q has no room for a default sandbox (%s)", q.Name, tightest),
				"delete sandboxes you no longer need (kubectl agentkernel list), ask for more quota, or create smaller sandboxes (--cpu, --memory, --ephemeral-storage)"))
		default:
			out = append(out, ok("ResourceQuota %q has room for %d more default sandbox(es) (tightest: %s)", q.Name, room, tightest))
		}
	}
	return out
}

// quotaCountsSandboxes says whether a quota's scopes take in a default
// sandbox: no activeDeadlineSeconds (NotTerminating), requests set
// (NotBestEffort), no priority class, no cross-namespace affinity.
func quotaCountsSandboxes(q *corev1.ResourceQuota) bool {
	has := map[corev1.ResourceQuotaScope]bool{corev1.ResourceQuotaScopeNotTerminating: true, corev1.ResourceQuotaScopeNotBestEffort: true}
	for _, s := range q.Spec.Scopes {
		if !has[s] {
			return false
		}
	}
	if q.Spec.ScopeSelector != nil {
		for _, e := range q.Spec.ScopeSelector.MatchExpressions {
			present := has[e.ScopeName]
			switch e.Operator {
			case corev1.ScopeSelectorOpExists, corev1.ScopeSelectorOpIn:
				if !present {
					return false
				}
			case corev1.ScopeSelectorOpDoesNotExist:
				if present {
					return false
				}
			case corev1.ScopeSelectorOpNotIn:
				// A PriorityClass not in the list: a sandbox has none, so it matches.
			}
		}
	}
	return true
}

// sandboxingHandlers are RuntimeClass handlers that give a sandbox a kernel
// of its own.
var sandboxingHandlers = []struct{ prefix, name string }{
	{"runsc", "gVisor"}, {"gvisor", "gVisor"}, {"kata", "Kata Containers"}, {"firecracker", "Firecracker"}, {"fc", "Kata/Firecracker"},
}

func checkRuntimeClasses(ctx context.Context, env *Env) []Result {
	list, err := env.Clientset.NodeV1().RuntimeClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Result{warn("cannot list RuntimeClasses: "+err.Error(),
			"nothing to do if you know the cluster's RuntimeClasses; kubectl agentkernel rbac --all-namespaces lets doctor list them")}
	}
	var strong, other []string
	for _, rc := range list.Items {
		kind := ""
		for _, h := range sandboxingHandlers {
			if strings.HasPrefix(rc.Handler, h.prefix) {
				kind = h.name
				break
			}
		}
		if kind != "" {
			strong = append(strong, fmt.Sprintf("%s (%s, handler %s)", rc.Name, kind, rc.Handler))
		} else {
			other = append(other, fmt.Sprintf("%s (handler %s)", rc.Name, rc.Handler))
		}
	}
	switch {
	case len(strong) > 0:
		return []Result{ok("RuntimeClasses with a kernel of their own: %s; use one with --runtime-class NAME", strings.Join(strong, ", "))}
	case len(other) > 0:
		return []Result{warn("no gVisor or Kata RuntimeClass, only: "+strings.Join(other, ", ")+"; sandboxes share the node's kernel",
			"for a stronger boundary, install gVisor or Kata Containers and pass --runtime-class")}
	}
	return []Result{warn("no RuntimeClass: sandboxes share the node's kernel (hardened by seccomp, no capabilities, non-root)",
		"for a stronger boundary, install gVisor or Kata Containers and pass --runtime-class")}
}

func checkDNS(ctx context.Context, env *Env) []Result {
	f := fence.DetectDNS(ctx, env.Clientset)
	rule := "egress sandboxes allow DNS to " + describeDestinations(f.Servers)
	switch {
	case f.Err != nil:
		return []Result{warn(f.Found+"; "+rule,
			"if lookups fail in egress sandboxes, give the DNS address with --dns (e.g. --dns 169.254.20.10 for NodeLocal DNSCache), or let create read the DNS Services: kubectl agentkernel rbac (the dns-reader Role)")}
	case f.Default:
		return []Result{warn(f.Found+"; "+rule, "if lookups fail in egress sandboxes, give the cluster's DNS address with --dns ADDRESS[:PORT]")}
	}
	return []Result{ok("%s", f.Found)}
}

func describeDestinations(dests []fence.Destination) string {
	s := make([]string, len(dests))
	for i, d := range dests {
		s[i] = d.String()
	}
	return strings.Join(s, "; ")
}

// checkOtherPolicies finds NetworkPolicies, not the plugin's own, that
// select sandboxes and allow traffic: they widen every fence they select.
func checkOtherPolicies(ctx context.Context, env *Env) []Result {
	policies, err := env.Clientset.NetworkingV1().NetworkPolicies(env.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Result{warn("cannot list NetworkPolicies: "+err.Error(), env.rbacHint())}
	}
	// A new sandbox's labels, and those of every sandbox there is.
	spec := defaultSandbox(env.Namespace)
	subjects := []map[string]string{spec.Pod().Labels}
	names := []string{"new sandboxes"}
	pods, err := sandbox.List(ctx, env.Clientset, env.Namespace, "")
	if err != nil {
		return []Result{warn("cannot list sandboxes to see which policies select them: "+err.Error(), env.rbacHint())}
	}
	for _, p := range pods {
		subjects = append(subjects, p.Labels)
		names = append(names, "sandbox/"+sandbox.NameOf(&p))
	}
	type hit struct {
		egress, ingress bool
		selects         []string
	}
	hits := map[string]*hit{}
	var order []string
	for i, l := range subjects {
		for _, w := range sandbox.WideningPolicies(policies.Items, l) {
			h := hits[w.Policy.Name]
			if h == nil {
				h = &hit{}
				hits[w.Policy.Name] = h
				order = append(order, w.Policy.Name)
			}
			h.egress, h.ingress = h.egress || w.Egress, h.ingress || w.Ingress
			h.selects = append(h.selects, names[i])
		}
	}
	if len(order) == 0 {
		return []Result{ok("no other NetworkPolicy in namespace %q selects sandboxes", env.Namespace)}
	}
	var out []Result
	for _, name := range order {
		h := hits[name]
		var allows []string
		if h.egress {
			allows = append(allows, "egress")
		}
		if h.ingress {
			allows = append(allows, "ingress")
		}
		out = append(out, warn(fmt.Sprintf("NetworkPolicy %q selects %s and allows %s; policies add up, so it widens their fence", name, strings.Join(h.selects, ", "), strings.Join(allows, " and ")),
			fmt.Sprintf("if sandboxes should not have it, exclude them from its podSelector: matchExpressions [{key: %s, operator: DoesNotExist}] (kubectl edit networkpolicy %s -n %s)", sandbox.LabelManagedBy, name, env.Namespace)))
	}
	return out
}

func checkNetworkPolicy(ctx context.Context, env *Env) []Result {
	if env.Probe == nil {
		return []Result{warn("enforcement not checked: the API shows NetworkPolicies stored, not whether anything enforces them",
			fmt.Sprintf("run: kubectl agentkernel doctor -n %s --probe (starts two small sandboxes for a few seconds)", env.Namespace))}
	}
	return []Result{env.Probe.run(ctx, env)}
}
