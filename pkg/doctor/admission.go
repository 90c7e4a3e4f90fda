package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

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
		case isSCCRefusal(err):
			action = sccAction
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
