package egress

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

// ImageRepository is where the release publishes the proxy's image (see
// .goreleaser.yaml, kos): the plugin's own binary, run as `egress-proxy`.
const ImageRepository = "ghcr.io/agentkernel/kubectl-agentkernel-egress"

// DefaultImage is the proxy image of this plugin's own version, so a
// plugin and the proxy it installs always agree.
func DefaultImage() string { return ImageRepository + ":" + ImageTag(version.Get().Version) }

// ImageTag turns a version into a valid image tag: '+' (semver build
// metadata, as in snapshot versions) is not allowed in a tag and becomes
// '-', as the release's tag template does.
func ImageTag(v string) string {
	b := []byte(v)
	for i, c := range b {
		if !tagChar(c, i == 0) {
			b[i] = '-'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	if len(b) == 0 {
		return "dev"
	}
	return string(b)
}

// tagChar: [A-Za-z0-9_] anywhere, '.' and '-' after the first character.
func tagChar(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		return true
	case c == '.', c == '-':
		return !first
	}
	return false
}

// Config is what shapes a namespace's proxy.
type Config struct {
	Namespace string
	Image     string
	Replicas  int32
	// Private are private ranges the proxy may reach: its NetworkPolicy
	// lets it, and the proxy dials names that resolve into them
	// (hosts.Permitted). Loopback and link-local are never among them.
	Private []netip.Prefix
	// APIServer are the API server's in-cluster addresses, which the
	// proxy's watch needs to reach. Empty: not known (see APIServerUnknown).
	APIServer []netip.AddrPort
	// UID and GID the proxy runs as; 0: ProxyUID (see fitNamespace).
	UID, GID int64
}

// AnnotationVersion records on the proxy's objects which plugin made them.
const AnnotationVersion = "agentkernel/version"

// ProxyUID is the unprivileged user the proxy runs as (the "nonroot" user of
// distroless and Chainguard images).
const ProxyUID int64 = 65532

var (
	proxyCPU    = resource.MustParse("250m")
	proxyMemory = resource.MustParse("128Mi")
	proxyDisk   = resource.MustParse("16Mi")
)

// Objects are the proxy's objects, in the order they are created: its
// NetworkPolicy first, so no proxy Pod ever runs unfenced, the Deployment
// last.
type Objects struct {
	NetworkPolicy  *networkingv1.NetworkPolicy
	ServiceAccount *corev1.ServiceAccount
	Role           *rbacv1.Role
	RoleBinding    *rbacv1.RoleBinding
	// KeyTable is the namespace's model-key table (keys.SecretName),
	// made empty: the plugin writes a row per sandbox Pod. Usage is where
	// the proxy publishes what each Pod spent. Both are made if missing
	// and never changed by an install (their data is not the install's).
	KeyTable   *corev1.Secret
	Usage      *corev1.ConfigMap
	Service    *corev1.Service
	Deployment *appsv1.Deployment
}

// List returns the objects in creation order.
func (o *Objects) List() []runtime.Object {
	return []runtime.Object{o.NetworkPolicy, o.ServiceAccount, o.Role, o.RoleBinding, o.KeyTable, o.Usage, o.Service, o.Deployment}
}

func (c *Config) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:        name,
		Namespace:   c.Namespace,
		Labels:      sandbox.ProxyLabels(),
		Annotations: map[string]string{AnnotationVersion: version.Get().Version},
	}
}

// Objects renders the proxy's objects.
func (c *Config) Objects() *Objects {
	replicas := c.Replicas
	if replicas <= 0 {
		replicas = 1
	}
	uid, gid := c.runAs()
	args := []string{"egress-proxy", "--namespace=" + c.Namespace, "--listen=:" + strconv.Itoa(fence.ProxyPort)}
	for _, p := range c.Private {
		args = append(args, "--private-cidr="+p.String())
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU:              proxyCPU,
		corev1.ResourceMemory:           proxyMemory,
		corev1.ResourceEphemeralStorage: proxyDisk,
	}
	podMeta := c.meta("")
	podMeta.Namespace = ""
	return &Objects{
		NetworkPolicy: c.networkPolicy(),
		ServiceAccount: &corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: c.meta(fence.ProxyName),
			// Mounted into the proxy's Pods only, which ask for it.
			AutomountServiceAccountToken: ptr.To(false),
		},
		Role: &rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: c.meta(fence.ProxyName),
			Rules:      ProxyRules(),
		},
		RoleBinding: &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: c.meta(fence.ProxyName),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: fence.ProxyName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: fence.ProxyName, Namespace: c.Namespace}},
		},
		KeyTable: &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: c.meta(keys.SecretName),
			Type:       corev1.SecretTypeOpaque,
		},
		Usage: &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: c.meta(keys.UsageConfigMapName),
		},
		Service: &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: c.meta(fence.ProxyName),
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeClusterIP,
				Selector: sandbox.ProxyLabels(),
				Ports: []corev1.ServicePort{{
					Name: "proxy", Protocol: corev1.ProtocolTCP, Port: fence.ProxyPort, TargetPort: intstr.FromInt32(fence.ProxyPort),
				}},
			},
		},
		Deployment: &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: c.meta(fence.ProxyName),
			Spec: appsv1.DeploymentSpec{
				Replicas:             ptr.To(replicas),
				RevisionHistoryLimit: ptr.To[int32](2),
				Selector:             &metav1.LabelSelector{MatchLabels: sandbox.ProxyLabels()},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: podMeta,
					// Hardened as a sandbox is: Pod Security "restricted".
					Spec: corev1.PodSpec{
						ServiceAccountName:            fence.ProxyName,
						AutomountServiceAccountToken:  ptr.To(true), // the watch of the namespace's Pods
						EnableServiceLinks:            ptr.To(false),
						TerminationGracePeriodSeconds: ptr.To[int64](10),
						// A name with a dot is looked up as it is before the
						// cluster's search domains are tried (proxy.go).
						DNSConfig: &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("1")}}},
						SecurityContext: &corev1.PodSecurityContext{
							RunAsNonRoot:   ptr.To(true),
							RunAsUser:      ptr.To(uid),
							RunAsGroup:     ptr.To(gid),
							SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						Containers: []corev1.Container{{
							Name:  "proxy",
							Image: c.Image,
							Args:  args,
							Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: fence.ProxyPort, Protocol: corev1.ProtocolTCP}},
							// The Go runtime collects garbage before the
							// kernel kills it for memory.
							Env:       []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: "100MiB"}},
							Resources: corev1.ResourceRequirements{Requests: resources, Limits: resources.DeepCopy()},
							SecurityContext: &corev1.SecurityContext{
								Privileged:               ptr.To(false),
								AllowPrivilegeEscalation: ptr.To(false),
								ReadOnlyRootFilesystem:   ptr.To(true),
								RunAsNonRoot:             ptr.To(true),
								Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
								SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
							},
							TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						}},
					},
				},
			},
		},
	}
}

// ProxyRules are what the proxy's Role grants its ServiceAccount: the
// grant table (which Pod has which address, and its grants; a pool's
// definition, for its unclaimed members'), the key table — one Secret by
// name, and no other Secret — and the usage ConfigMap it publishes to.
func ProxyRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "podtemplates"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{keys.SecretName}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{keys.UsageConfigMapName}, Verbs: []string{"get", "update", "patch"}},
	}
}

// networkPolicy fences the proxy: in, only the namespace's sandboxes on the
// proxy port; out, public addresses (exactly what hosts.Classify calls
// public), DNS, the API server (for its watch) and the private ranges the
// admin opened.
func (c *Config) networkPolicy() *networkingv1.NetworkPolicy {
	tcp, udp := ptr.To(corev1.ProtocolTCP), ptr.To(corev1.ProtocolUDP)
	v4, v6 := hosts.NonPublicPrefixes()
	egress := []networkingv1.NetworkPolicyEgressRule{
		{To: []networkingv1.NetworkPolicyPeer{
			{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: prefixStrings(v4)}},
			{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: prefixStrings(v6)}},
		}},
		// The proxy resolves names with the Pod's resolver, wherever the
		// cluster runs it (CoreDNS under any label, NodeLocal DNSCache on
		// a link-local address): DNS to anywhere. The proxy never sends a
		// sandbox's bytes there: it dials only checked addresses.
		{Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: udp, Port: ptr.To(intstr.FromInt32(53))},
			{Protocol: tcp, Port: ptr.To(intstr.FromInt32(53))},
		}},
	}
	if len(c.Private) > 0 {
		var peers []networkingv1.NetworkPolicyPeer
		for _, p := range c.Private {
			// The Never addresses inside stay out, as Permitted keeps them.
			peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: p.String(), Except: neverWithin(p)}})
		}
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{To: peers})
	}
	egress = append(egress, c.apiServerRules()...)
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: c.meta(fence.ProxyPolicyName),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: sandbox.ProxyLabels()},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				// Sandboxes, and the unclaimed members of pools, which have
				// no sandbox label yet and reach their pool's hosts while
				// they warm up (an agent's install). Which hosts either may
				// reach is the proxy's own check (grants.go); this only
				// keeps every other Pod from its port.
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{
						MatchLabels:      map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy},
						MatchExpressions: []metav1.LabelSelectorRequirement{{Key: sandbox.LabelSandbox, Operator: metav1.LabelSelectorOpExists}},
					}},
					{PodSelector: &metav1.LabelSelector{
						MatchLabels:      map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy},
						MatchExpressions: []metav1.LabelSelectorRequirement{{Key: sandbox.LabelPool, Operator: metav1.LabelSelectorOpExists}},
					}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: tcp, Port: ptr.To(intstr.FromInt32(fence.ProxyPort))}},
			}},
			Egress: egress,
		},
	}
}

// APIServerUnknownPorts are the ports the proxy may use on private
// addresses when the API server's in-cluster address cannot be read: the
// usual ports of an API server. The proxy itself still dials no private
// address for a sandbox unless it was opened.
var APIServerUnknownPorts = []int32{443, 6443}

// apiServerRules let the proxy reach the API server.
func (c *Config) apiServerRules() []networkingv1.NetworkPolicyEgressRule {
	tcp := ptr.To(corev1.ProtocolTCP)
	if len(c.APIServer) == 0 {
		var peers []networkingv1.NetworkPolicyPeer
		for _, cidr := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"} {
			peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
		}
		var ports []networkingv1.NetworkPolicyPort
		for _, p := range APIServerUnknownPorts {
			ports = append(ports, networkingv1.NetworkPolicyPort{Protocol: tcp, Port: ptr.To(intstr.FromInt32(p))})
		}
		return []networkingv1.NetworkPolicyEgressRule{{To: peers, Ports: ports}}
	}
	byPort := map[uint16][]string{}
	for _, ap := range c.APIServer {
		a := ap.Addr().Unmap()
		byPort[ap.Port()] = append(byPort[ap.Port()], netip.PrefixFrom(a, a.BitLen()).String())
	}
	ports := make([]int, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, int(p))
	}
	sort.Ints(ports)
	var rules []networkingv1.NetworkPolicyEgressRule
	for _, p := range ports {
		cidrs := byPort[uint16(p)]
		sort.Strings(cidrs)
		var peers []networkingv1.NetworkPolicyPeer
		for i, cidr := range cidrs {
			if i > 0 && cidrs[i-1] == cidr {
				continue
			}
			peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
		}
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{
			To:    peers,
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: tcp, Port: ptr.To(intstr.FromInt32(int32(p)))}},
		})
	}
	return rules
}

// neverWithin is the except list of a --private-cidr block, nil if empty.
func neverWithin(p netip.Prefix) []string {
	if n := hosts.NeverWithin(p); len(n) > 0 {
		return prefixStrings(n)
	}
	return nil
}

func prefixStrings(ps []netip.Prefix) []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return s
}

// ParsePrivateCIDR reads --private-cidr: a block holding private addresses
// the proxy may reach. Blocks of public addresses need no opening;
// loopback, link-local and the like cannot be opened.
func ParsePrivateCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, fmt.Errorf("--private-cidr %q: expected a CIDR block such as 10.20.0.0/16", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("--private-cidr %q: an IPv6 zone has no meaning here", s)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if !p.IsValid() || p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("--private-cidr %q: host bits are set; did you mean %s?", s, p.Masked())
	}
	switch c, why := hosts.ClassifyBlock(p); c {
	case hosts.Never:
		return netip.Prefix{}, fmt.Errorf("--private-cidr %s is %s: the proxy never connects there", p, why)
	case hosts.Public:
		return netip.Prefix{}, fmt.Errorf("--private-cidr %s holds public addresses only: the proxy reaches those without it", p)
	}
	return p, nil
}
