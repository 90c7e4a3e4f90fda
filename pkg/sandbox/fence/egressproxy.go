package fence

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"

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
		return nil, field.Invalid("allowHosts", "%d `allowHosts` values; at most %d are allowed", len(in), MaxAllowHosts)
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
