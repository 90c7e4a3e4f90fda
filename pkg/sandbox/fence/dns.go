package fence

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// Where clusters keep their DNS. A sandbox's egress rule must allow exactly
// the place its lookups go, and that differs: kube-dns/CoreDNS Pods on port
// 53 (most clusters), NodeLocal DNSCache on the node at 169.254.20.10 (a
// link-local address, blocked unless named), OpenShift's DNS Pods on 5353.
const (
	// NodeLocalDNSAddress is NodeLocal DNSCache's usual listen address.
	NodeLocalDNSAddress = "169.254.20.10"
)

// DNSService names a Service that fronts a cluster's DNS.
type DNSService struct{ Namespace, Name string }

var (
	// KubeDNS is the Service kube-dns and CoreDNS are deployed behind.
	KubeDNS = DNSService{"kube-system", "kube-dns"}
	// OpenShiftDNS is OpenShift's DNS Service (its Pods listen on 5353).
	OpenShiftDNS = DNSService{"openshift-dns", "dns-default"}
	// NodeLocalDNS are the Services the NodeLocal DNSCache add-on creates.
	NodeLocalDNS = []DNSService{{"kube-system", "node-local-dns"}, {"kube-system", "kube-dns-upstream"}}
)

// DNSFinding is what DetectDNS learnt of the cluster's DNS.
type DNSFinding struct {
	// Servers are the destinations an egress sandbox's DNS rule allows.
	Servers []Destination
	// Found says, for people, what was found and where.
	Found string
	// Default is true when nothing was found and Servers is DefaultDNS().
	Default bool
	// Err is why nothing was found when the API server said more than
	// "not found" (forbidden, unreachable).
	Err error
}

// DetectDNS finds where the cluster's DNS answers, from the Services that
// front it: the kube-dns Service's selector and target ports (so a DNS on
// another port, OpenShift's 5353, is allowed by its real port), and
// NodeLocal DNSCache's Services, whose presence means lookups go to
// 169.254.20.10 and to the kube-dns ClusterIP on the node itself. What
// cannot be read (a user allowed no Service in kube-system) leaves
// DefaultDNS and says why; `--dns` overrides all of it.
func DetectDNS(ctx context.Context, cs kubernetes.Interface) DNSFinding {
	get := func(s DNSService) (*corev1.Service, error) {
		return cs.CoreV1().Services(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	}
	// One round trip for all: a create pays for this before its Pod.
	services := append([]DNSService{KubeDNS, OpenShiftDNS}, NodeLocalDNS...)
	found := make([]*corev1.Service, len(services))
	errs := make([]error, len(services))
	var wg sync.WaitGroup
	for i, s := range services {
		wg.Go(func() { found[i], errs[i] = get(s) })
	}
	wg.Wait()

	dns, dnsErr := found[0], errs[0]
	if dnsErr != nil && apierrors.IsNotFound(dnsErr) && errs[1] == nil {
		dns, dnsErr = found[1], nil
	}
	if dnsErr != nil {
		f := DNSFinding{Servers: DefaultDNS(), Default: true}
		if apierrors.IsNotFound(dnsErr) {
			f.Found = fmt.Sprintf("no Service %s/%s or %s/%s", KubeDNS.Namespace, KubeDNS.Name, OpenShiftDNS.Namespace, OpenShiftDNS.Name)
		} else {
			f.Err = dnsErr
			f.Found = fmt.Sprintf("cannot read Service %s/%s: %v", KubeDNS.Namespace, KubeDNS.Name, dnsErr)
		}
		return f
	}
	f := DNSFinding{}
	f.Servers, f.Found = dnsServers(dns)
	for i, s := range NodeLocalDNS {
		if errs[2+i] == nil && found[2+i] != nil {
			local := nodeLocalServers(dns)
			f.Servers = append(f.Servers, local...)
			f.Found += fmt.Sprintf("; NodeLocal DNSCache (Service %s/%s): %s", s.Namespace, s.Name, describe(local))
			break
		}
	}
	return f
}

// dnsServers turns a DNS Service into destinations: its Pods by selector on
// their target ports; a Service without selector by its cluster IPs.
func dnsServers(svc *corev1.Service) ([]Destination, string) {
	var ports []Port
	var servicePorts []Port
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		ports = appendPort(ports, Port{Protocol: proto, Port: target})
		servicePorts = appendPort(servicePorts, Port{Protocol: proto, Port: intstr.FromInt32(p.Port)})
	}
	where := "Service " + svc.Namespace + "/" + svc.Name
	if len(svc.Spec.Selector) > 0 {
		d := Destination{Namespace: svc.Namespace, Pods: svc.Spec.Selector, Ports: ports}
		if d.Validate() == nil {
			return []Destination{d}, where + ": " + d.String()
		}
	}
	var dests []Destination
	for _, ip := range clusterIPs(svc) {
		dests = append(dests, Destination{CIDR: ip, Ports: servicePorts})
	}
	if len(dests) == 0 {
		return DefaultDNS(), where + " has neither a selector nor a cluster IP; using " + describe(DefaultDNS())
	}
	return dests, where + " (no selector): " + describe(dests)
}

// nodeLocalServers: NodeLocal DNSCache answers on the node, on its own
// address and (in its usual mode) on the kube-dns cluster IP, port 53.
func nodeLocalServers(kubeDNS *corev1.Service) []Destination {
	dests := []Destination{{CIDR: NodeLocalDNSAddress + "/32", Ports: DNSPorts(intstr.FromInt32(53))}}
	for _, ip := range clusterIPs(kubeDNS) {
		dests = append(dests, Destination{CIDR: ip, Ports: DNSPorts(intstr.FromInt32(53))})
	}
	return dests
}

func clusterIPs(svc *corev1.Service) []string {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []string
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()).String())
		}
	}
	return out
}

func appendPort(ports []Port, p Port) []Port {
	for _, q := range ports {
		if q == p {
			return ports
		}
	}
	return append(ports, p)
}

func describe(dests []Destination) string {
	s := make([]string, len(dests))
	for i, d := range dests {
		s[i] = d.String()
	}
	return strings.Join(s, "; ")
}
