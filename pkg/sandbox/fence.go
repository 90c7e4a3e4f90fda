package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// The Spec's side of the network fence: what its NetworkPolicy selects
// and allows, checked against its network mode.

// validateEgress checks the egress fields against the network mode.
func (s *Spec) validateEgress() error {
	if s.Network != NetworkEgress {
		if len(s.AllowEgress) > 0 {
			return field.Invalid("allowEgress", "`allowEgress` needs `network` egress (the network is %q)", s.Network)
		}
		if len(s.DNS) > 0 {
			return field.Invalid("dns", "`dns` only matters with `network` egress (the network is %q)", s.Network)
		}
	}
	for _, d := range append(append([]fence.Destination(nil), s.AllowEgress...), s.DNS...) {
		if err := d.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// EgressDestinations is what an egress sandbox may reach: its AllowEgress
// destinations (the public internet when there are none) and its DNS.
func (s *Spec) EgressDestinations() []fence.Destination {
	dests := s.AllowEgress
	if len(dests) == 0 {
		dests = fence.PublicInternet()
	}
	dns := s.DNS
	if dns == nil {
		dns = fence.DefaultDNS()
	}
	return append(append([]fence.Destination(nil), dests...), dns...)
}

// NetworkPolicy returns the sandbox's NetworkPolicy, or nil when the network
// is open. It must exist before the Pod so that there is no moment in which
// a no-network sandbox has network.
func (s *Spec) NetworkPolicy() *networkingv1.NetworkPolicy {
	if s.Network == NetworkOpen {
		return nil
	}
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: s.objectMeta(PodName(s.Name)),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: s.fenceLabels()},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	if s.Network == NetworkEgress {
		np.Spec.Egress = fence.EgressRules(s.EgressDestinations())
	}
	np.Spec.Egress = append(np.Spec.Egress, s.egressProxyRules()...)
	return np
}

// Widening is another NetworkPolicy that selects a sandbox and allows it
// traffic. NetworkPolicies add up: whatever it allows, the sandbox may do,
// whatever its own policy says.
type Widening struct {
	Policy  *networkingv1.NetworkPolicy
	Egress  bool // it allows some egress
	Ingress bool // it allows some ingress
}

// WideningPolicies returns the policies that select a Pod labelled
// podLabels and allow it some traffic, leaving out the plugin's own (which
// carry its label and are owned by their sandbox's Pod).
func WideningPolicies(policies []networkingv1.NetworkPolicy, podLabels map[string]string) []Widening {
	var out []Widening
	for i := range policies {
		np := &policies[i]
		if IsManaged(np) && metav1.GetControllerOfNoCopy(np) != nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		ingress, egress := len(np.Spec.PolicyTypes) == 0, len(np.Spec.PolicyTypes) == 0 && len(np.Spec.Egress) > 0
		for _, t := range np.Spec.PolicyTypes {
			ingress = ingress || t == networkingv1.PolicyTypeIngress
			egress = egress || t == networkingv1.PolicyTypeEgress
		}
		w := Widening{Policy: np, Egress: egress && len(np.Spec.Egress) > 0, Ingress: ingress && len(np.Spec.Ingress) > 0}
		if w.Egress || w.Ingress {
			out = append(out, w)
		}
	}
	return out
}

// OtherPolicies lists the namespace's NetworkPolicies that widen the fence
// of a sandbox whose Pod carries podLabels.
func OtherPolicies(ctx context.Context, cs kubernetes.Interface, namespace string, podLabels map[string]string) ([]Widening, error) {
	list, err := cs.NetworkingV1().NetworkPolicies(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return WideningPolicies(list.Items, podLabels), nil
}

// ProxyLabels are on every object of the egress proxy, and select its Pods.
func ProxyLabels() map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, fence.LabelComponent: fence.ComponentEgressProxy}
}

// validateAllowHosts checks the grants and that nothing else opens the
// network: the proxy route replaces the network mode, it does not add to it.
func (s *Spec) validateAllowHosts() error {
	if len(s.AllowHosts) == 0 {
		return nil
	}
	canonical, err := fence.CanonicalAllowHosts(s.AllowHosts)
	if err != nil {
		return err
	}
	if strings.Join(canonical, ",") != strings.Join(s.AllowHosts, ",") {
		return field.Invalid("allowHosts", "`allowHosts` values must be canonical and unique (%s); build them with CanonicalAllowHosts", strings.Join(canonical, ", "))
	}
	if s.Network != NetworkNone {
		return field.Invalid("allowHosts", "`allowHosts` sends the sandbox's traffic through the namespace's egress proxy and allows nothing else, so it cannot be combined with `network` %s; drop `network` (or use `network` none)", s.Network)
	}
	if s.EgressProxyURL != "" {
		if u, err := url.Parse(s.EgressProxyURL); err != nil || u.Scheme != "http" || u.Host == "" {
			return fmt.Errorf("egress proxy URL %q: expected http://HOST:PORT", s.EgressProxyURL)
		}
	}
	return nil
}

func (s *Spec) proxyURL() string {
	if s.EgressProxyURL != "" {
		return s.EgressProxyURL
	}
	return fence.ProxyURL(s.Namespace, "")
}

// egressProxyEnv names the proxy the way common clients look for it: curl
// reads only the lower-case http_proxy (the upper-case one is a CGI
// header), most others either case, and Node.js's own http, https and
// fetch only with NODE_USE_ENV_PROXY=1 (recent versions; older ones need a
// proxy agent).
func (s *Spec) egressProxyEnv() []corev1.EnvVar {
	if len(s.AllowHosts) == 0 {
		return nil
	}
	u := s.proxyURL()
	var env []corev1.EnvVar
	for _, n := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		env = append(env, corev1.EnvVar{Name: n, Value: u})
	}
	return append(env, corev1.EnvVar{Name: "NO_PROXY", Value: s.noProxy()}, corev1.EnvVar{Name: "no_proxy", Value: s.noProxy()},
		corev1.EnvVar{Name: "NODE_USE_ENV_PROXY", Value: "1"})
}

// egressProxyRules are the egress rules of a sandbox with --allow-host: to
// its namespace's proxy Pods on the proxy port, nothing else (no DNS: the
// proxy resolves names, and the sandbox finds the proxy by address).
func (s *Spec) egressProxyRules() []networkingv1.NetworkPolicyEgressRule {
	if len(s.AllowHosts) == 0 {
		return nil
	}
	return []networkingv1.NetworkPolicyEgressRule{{
		To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: ProxyLabels()}}},
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(fence.ProxyPort))}},
	}}
}

// annotateAllowHosts records the grants on the Pod for the proxy.
func (s *Spec) annotateAllowHosts(annotations map[string]string) {
	if len(s.AllowHosts) == 0 {
		return
	}
	b, _ := json.Marshal(s.AllowHosts) // a []string always marshals
	annotations[fence.AnnotationAllowHosts] = string(b)
}

// SetAllowHosts replaces the grants on a sandbox Pod in memory, for a write
// that carries other changes too (a pool claim: one update sets the
// sandbox label and the grants). The Pod must have been made with
// --allow-host: its route to the proxy (NetworkPolicy and environment) is
// fixed when it is created; grants are not. An empty list revokes all.
func SetAllowHosts(pod *corev1.Pod, allow []string) error {
	canonical, err := fence.CanonicalAllowHosts(allow)
	if err != nil {
		return err
	}
	if !routedThroughProxy(pod) {
		return field.Invalid("allowHosts", "pod %s was made without `allowHosts`: it has no route to the egress proxy, and a Pod's NetworkPolicy and environment are fixed when it is created", pod.Name)
	}
	if len(canonical) == 0 {
		delete(pod.Annotations, fence.AnnotationAllowHosts)
		return nil
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	b, _ := json.Marshal(canonical)
	pod.Annotations[fence.AnnotationAllowHosts] = string(b)
	return nil
}

func routedThroughProxy(pod *corev1.Pod) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name != ContainerName {
			continue
		}
		for _, e := range c.Env {
			if e.Name == "HTTPS_PROXY" && strings.HasSuffix(e.Value, ":"+strconv.Itoa(fence.ProxyPort)) {
				return true
			}
		}
	}
	return false
}
