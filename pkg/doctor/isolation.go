package doctor

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

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
