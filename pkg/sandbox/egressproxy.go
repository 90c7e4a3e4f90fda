package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
)

// A sandbox with --allow-host reaches the network only through its
// namespace's egress proxy (pkg/egress): its NetworkPolicy allows egress to
// the proxy's Pods and nothing else, its environment names the proxy, and
// its Pod carries the grants the proxy reads. This file is the sandbox's
// half of that contract; the proxy's objects are made in pkg/egress.
const (
	// ProxyName names the proxy's Deployment, Service, ServiceAccount,
	// Role and RoleBinding in each namespace.
	ProxyName = "agentkernel-egress"
	// ProxyPolicyName names the proxy's NetworkPolicy. It cannot be the
	// policy of a sandbox (NamePrefix + a DNS label has no dot): create
	// replaces a stale sandbox policy of its name, never this one.
	ProxyPolicyName = "agentkernel-egress.proxy"
	// ProxyPort is where the proxy listens and its Service serves.
	ProxyPort = 3128

	// LabelComponent tells the plugin's objects that are not sandboxes
	// apart; the proxy's carry ComponentEgressProxy.
	LabelComponent       = "agentkernel/component"
	ComponentEgressProxy = "egress-proxy"

	// AnnotationAllowHosts holds a sandbox Pod's grants: a JSON list of
	// canonical rules (hosts.Rule.String), set when the Pod is created or
	// claimed and read by the proxy's watch.
	AnnotationAllowHosts = "agentkernel/allow-hosts"

	// MaxAllowHosts bounds the grants of one sandbox.
	MaxAllowHosts = 256
)

// ProxyLabels are on every object of the egress proxy, and select its Pods.
func ProxyLabels() map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelComponent: ComponentEgressProxy}
}

// NoProxy lists what a sandbox reaches without the proxy: itself.
const NoProxy = "localhost,127.0.0.1,::1"

// ProxyURL is the address a sandbox is given for its namespace's proxy:
// the Service's cluster IP, so the sandbox needs no DNS at all (its policy
// allows none: DNS is a way out too). With no cluster IP known (a client
// dry run before the proxy exists) it is the Service's DNS name.
func ProxyURL(namespace, clusterIP string) string {
	host := ProxyName + "." + namespace + ".svc"
	if a, err := netip.ParseAddr(clusterIP); err == nil {
		host = a.String()
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(ProxyPort))
}

// CanonicalAllowHosts parses --allow-host values into their canonical
// forms, in the order given, without repeats.
func CanonicalAllowHosts(in []string) ([]string, error) {
	if len(in) > MaxAllowHosts {
		return nil, fmt.Errorf("%d --allow-host values; at most %d are allowed", len(in), MaxAllowHosts)
	}
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		r, err := hosts.ParseRule(s)
		if err != nil {
			return nil, err
		}
		if c := r.String(); !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// validateAllowHosts checks the grants and that nothing else opens the
// network: the proxy route replaces the network mode, it does not add to it.
func (s *Spec) validateAllowHosts() error {
	if len(s.AllowHosts) == 0 {
		return nil
	}
	canonical, err := CanonicalAllowHosts(s.AllowHosts)
	if err != nil {
		return err
	}
	if strings.Join(canonical, ",") != strings.Join(s.AllowHosts, ",") {
		return fmt.Errorf("--allow-host values must be canonical and unique (%s); build them with CanonicalAllowHosts", strings.Join(canonical, ", "))
	}
	if s.Network != NetworkNone {
		return fmt.Errorf("--allow-host sends the sandbox's traffic through the namespace's egress proxy and allows nothing else, so it cannot be combined with --network %s; drop --network (or use --network none)", s.Network)
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
	return ProxyURL(s.Namespace, "")
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
	return append(env, corev1.EnvVar{Name: "NO_PROXY", Value: NoProxy}, corev1.EnvVar{Name: "no_proxy", Value: NoProxy},
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
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(ProxyPort))}},
	}}
}

// annotateAllowHosts records the grants on the Pod for the proxy.
func (s *Spec) annotateAllowHosts(annotations map[string]string) {
	if len(s.AllowHosts) == 0 {
		return
	}
	b, _ := json.Marshal(s.AllowHosts) // a []string always marshals
	annotations[AnnotationAllowHosts] = string(b)
}

// SetAllowHosts replaces the grants on a sandbox Pod in memory, for a write
// that carries other changes too (a pool claim: one update sets the
// sandbox label and the grants). The Pod must have been made with
// --allow-host: its route to the proxy (NetworkPolicy and environment) is
// fixed when it is created; grants are not. An empty list revokes all.
func SetAllowHosts(pod *corev1.Pod, allow []string) error {
	canonical, err := CanonicalAllowHosts(allow)
	if err != nil {
		return err
	}
	if !routedThroughProxy(pod) {
		return fmt.Errorf("pod %s was made without --allow-host: it has no route to the egress proxy, and a Pod's NetworkPolicy and environment are fixed when it is created", pod.Name)
	}
	if len(canonical) == 0 {
		delete(pod.Annotations, AnnotationAllowHosts)
		return nil
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	b, _ := json.Marshal(canonical)
	pod.Annotations[AnnotationAllowHosts] = string(b)
	return nil
}

func routedThroughProxy(pod *corev1.Pod) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name != ContainerName {
			continue
		}
		for _, e := range c.Env {
			if e.Name == "HTTPS_PROXY" && strings.HasSuffix(e.Value, ":"+strconv.Itoa(ProxyPort)) {
				return true
			}
		}
	}
	return false
}

// AllowHostsOf reads a Pod's grants. The annotation is written by the
// plugin, but anyone who may update the Pod may change it: parse it as
// untrusted input.
func AllowHostsOf(pod *corev1.Pod) ([]hosts.Rule, error) {
	raw, ok := pod.Annotations[AnnotationAllowHosts]
	if !ok {
		return nil, nil
	}
	return ParseAllowHosts(raw)
}

// ParseAllowHosts reads the value of AnnotationAllowHosts.
func ParseAllowHosts(raw string) ([]hosts.Rule, error) {
	if len(raw) > MaxAllowHosts*(hosts.MaxRuleLength+3)+2 {
		return nil, errors.New("annotation " + AnnotationAllowHosts + " is too long")
	}
	var list []string
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		return nil, fmt.Errorf("annotation %s is not a JSON list of strings", AnnotationAllowHosts)
	}
	if len(list) > MaxAllowHosts {
		return nil, fmt.Errorf("annotation %s lists %d hosts; at most %d are allowed", AnnotationAllowHosts, len(list), MaxAllowHosts)
	}
	rules := make([]hosts.Rule, 0, len(list))
	for _, s := range list {
		r, err := hosts.ParseRule(s)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %v", AnnotationAllowHosts, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}
