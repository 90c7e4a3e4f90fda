package fence

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Destination is one place a fenced sandbox may send traffic to: an address
// block, or the Pods a selector picks; on some ports (none: every port).
// Destinations are data, so every way of widening a fence (--allow-egress,
// the cluster's DNS, an egress proxy) adds destinations instead of building
// policy rules by hand; NetworkPolicy renders each as one egress rule.
type Destination struct {
	// CIDR is an address block ("203.0.113.0/24", "2001:db8::/32"). The
	// blocked ranges (BlockedRanges) inside it stay blocked, except those
	// that contain the block itself: only a destination that names private
	// addresses on purpose reaches them.
	CIDR string `json:"cidr,omitempty"`
	// Pods selects Pods by label instead, in Namespace ("" is the
	// sandbox's own namespace).
	Pods      map[string]string `json:"pods,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	// Ports limits the destination to these ports; none means every port
	// of every protocol.
	Ports []Port `json:"ports,omitempty"`
}

// Port is one port (or range Port..EndPort) of one protocol.
type Port struct {
	Protocol corev1.Protocol `json:"protocol"`
	// Port is a number, or for Pod destinations the name of a container port.
	Port    intstr.IntOrString `json:"port"`
	EndPort int32              `json:"endPort,omitempty"`
}

func (p Port) String() string {
	s := p.Port.String()
	if p.EndPort != 0 {
		s += "-" + strconv.Itoa(int(p.EndPort))
	}
	return s + "/" + string(p.Protocol)
}

// String is the canonical --allow-egress form of a CIDR destination with at
// most one port ("203.0.113.0/24:443/TCP"), and a readable description of
// any other ("pods k8s-app=kube-dns in kube-system, ports 53/UDP 53/TCP").
func (d Destination) String() string {
	if d.CIDR != "" && len(d.Ports) <= 1 {
		s := d.CIDR
		if strings.Contains(s, ":") && len(d.Ports) == 1 {
			s = "[" + s + "]"
		}
		if len(d.Ports) == 1 {
			s += ":" + d.Ports[0].String()
		}
		return s
	}
	var b strings.Builder
	if d.CIDR != "" {
		b.WriteString(d.CIDR)
	} else {
		b.WriteString("pods " + labels.SelectorFromSet(d.Pods).String())
		if d.Namespace != "" {
			b.WriteString(" in " + d.Namespace)
		}
	}
	if len(d.Ports) > 0 {
		ports := make([]string, len(d.Ports))
		for i, p := range d.Ports {
			ports[i] = p.String()
		}
		b.WriteString(", ports " + strings.Join(ports, " "))
	}
	return b.String()
}

// Validate checks a destination built in code or parsed from a flag.
func (d Destination) Validate() error {
	switch {
	case d.CIDR != "" && (d.Pods != nil || d.Namespace != ""):
		return fmt.Errorf("egress destination %s: either an address block or pods, not both", d)
	case d.CIDR == "" && d.Pods == nil:
		return fmt.Errorf("egress destination: needs an address block or a pod selector")
	}
	if d.CIDR != "" {
		if _, err := parseCanonicalPrefix(d.CIDR); err != nil {
			return err
		}
	}
	for k, v := range d.Pods {
		if err := ValidateLabel("egress pod selector", k, v); err != nil {
			return err
		}
	}
	if d.Namespace != "" {
		if errs := validation.IsDNS1123Label(d.Namespace); len(errs) > 0 {
			return fmt.Errorf("egress destination namespace %q: %s", d.Namespace, strings.Join(errs, "; "))
		}
	}
	for _, p := range d.Ports {
		switch p.Protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			return fmt.Errorf("egress destination %s: unknown protocol %q", d, p.Protocol)
		}
		if p.Port.Type == intstr.String {
			if d.CIDR != "" {
				return fmt.Errorf("egress destination %s: a named port only means something for pods", d)
			}
			if errs := validation.IsValidPortName(p.Port.StrVal); len(errs) > 0 {
				return fmt.Errorf("egress destination %s: port name %q: %s", d, p.Port.StrVal, strings.Join(errs, "; "))
			}
			continue
		}
		if p.Port.IntVal < 1 || p.Port.IntVal > 65535 || (p.EndPort != 0 && (p.EndPort < p.Port.IntVal || p.EndPort > 65535)) {
			return fmt.Errorf("egress destination %s: ports must be from 1 to 65535 (and a range low-high)", d)
		}
	}
	return nil
}

// ParseEgress parses a destination given as CIDR[:PORT[-END][/PROTO]]:
// "203.0.113.0/24", "198.51.100.7:443", "10.0.0.0/8:5432/tcp",
// "192.0.2.1:53/udp", "2001:db8::/32:443", "[2001:db8::1]:443". A bare
// address is one host (/32 or /128). A port without a protocol is TCP, as in
// Kubernetes; without a port every port and protocol is allowed. flag names
// the flag in messages.
func ParseEgress(flag, s string) (Destination, error) {
	bad := func(why string) (Destination, error) {
		return Destination{}, fmt.Errorf("%s %q: %s; expected CIDR[:PORT[/PROTO]], e.g. 203.0.113.0/24:443 or [2001:db8::1]:443/tcp", flag, s, why)
	}
	addr, port, hasPort := splitEgress(s)
	if addr == "" {
		return bad("no address")
	}
	prefix, err := parseCanonicalPrefix(addr)
	if err != nil {
		return bad(err.Error())
	}
	d := Destination{CIDR: prefix.String()}
	if hasPort {
		p, err := parsePortRange(port)
		if err != nil {
			return bad(err.Error())
		}
		d.Ports = []Port{p}
	}
	return d, nil
}

// splitEgress separates the address part from the port part. IPv6 needs
// brackets before a port unless it carries a prefix length, after which a
// ':' can only start the port.
func splitEgress(s string) (addr, port string, hasPort bool) {
	if rest, ok := strings.CutPrefix(s, "["); ok {
		a, after, ok := strings.Cut(rest, "]")
		if !ok {
			return "", "", false
		}
		if after == "" {
			return a, "", false
		}
		p, ok := strings.CutPrefix(after, ":")
		if !ok {
			return "", "", false
		}
		return a, p, true
	}
	if i := strings.Index(s, "/"); i >= 0 && isAddr(s[:i]) {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == len(s) {
			return s, "", false
		}
		if s[j] != ':' {
			return s, "", false // fails to parse as a prefix, with the whole text shown
		}
		return s[:j], s[j+1:], true
	}
	if isAddr(s) {
		return s, "", false
	}
	if i := strings.LastIndex(s, ":"); i >= 0 && !strings.Contains(s[:i], ":") {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// parseCanonicalPrefix accepts "a.b.c.d/n", "x::/n" or a bare address, and
// refuses host bits after the prefix length: 10.1.2.3/8 is more likely a
// mistake than a way to write 10.0.0.0/8.
func parseCanonicalPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("%q has a zone; zones mean nothing to a NetworkPolicy", s)
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		if a.Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%s is IPv4 written as IPv6 (IPv4-mapped), which NetworkPolicy refuses; give %s", s, a.Unmap())
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%s is IPv4 written as IPv6 (IPv4-mapped), which NetworkPolicy refuses; give the IPv4 form", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%s has bits set after the prefix length; did you mean %s (the block) or %s/%d (one address)?",
			s, p.Masked(), p.Addr(), p.Addr().BitLen())
	}
	return p, nil
}

// parsePortRange parses PORT[-END][/PROTO].
func parsePortRange(s string) (Port, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	p := Port{Protocol: corev1.ProtocolTCP}
	if hasProto {
		var ok bool
		if p.Protocol, ok = ProtocolNamed(proto); !ok {
			return Port{}, fmt.Errorf("unknown protocol %q (use tcp, udp or sctp)", proto)
		}
	}
	lo, hi, isRange := strings.Cut(num, "-")
	low, err := portNumber(lo)
	if err != nil {
		return Port{}, err
	}
	p.Port = intstr.FromInt32(low)
	if isRange {
		high, err := portNumber(hi)
		if err != nil {
			return Port{}, err
		}
		if high < low {
			return Port{}, fmt.Errorf("port range %s ends before it starts", num)
		}
		if high != low {
			p.EndPort = high
		}
	}
	return p, nil
}

// ProtocolNamed reads tcp, udp or sctp in any case.
func ProtocolNamed(s string) (corev1.Protocol, bool) {
	for _, p := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP} {
		if strings.EqualFold(s, string(p)) {
			return p, true
		}
	}
	return "", false
}

func portNumber(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 1 || n > 65535 || s != strconv.Itoa(int(n)) {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return int32(n), nil
}

// ParseDNSServer parses --dns CIDR[:PORT]: a DNS server (or block of
// them) that an egress sandbox may query, over UDP and TCP, on PORT
// (default 53).
func ParseDNSServer(s string) (Destination, error) {
	if _, port, hasPort := splitEgress(s); hasPort && strings.Contains(port, "/") {
		return Destination{}, field.Invalid("dns", "`dns` %q: give no protocol: DNS is allowed over both UDP and TCP", s)
	}
	d, err := ParseEgress("`dns`", s)
	if err != nil {
		return d, field.Error{Field: "dns", Detail: err.Error()}
	}
	port, end := intstr.FromInt32(53), int32(0)
	if len(d.Ports) == 1 {
		port, end = d.Ports[0].Port, d.Ports[0].EndPort
	}
	d.Ports = DNSPorts(port)
	for i := range d.Ports {
		d.Ports[i].EndPort = end
	}
	return d, nil
}

func DNSPorts(port intstr.IntOrString) []Port {
	return []Port{{Protocol: corev1.ProtocolUDP, Port: port}, {Protocol: corev1.ProtocolTCP, Port: port}}
}

// DefaultDNS is where an egress sandbox sends DNS queries when nothing
// better is known: kube-system's Pods labelled k8s-app=kube-dns (kube-dns
// and CoreDNS as most distributions deploy them), port 53.
func DefaultDNS() []Destination {
	return []Destination{{
		Namespace: "kube-system",
		Pods:      map[string]string{"k8s-app": "kube-dns"},
		Ports:     DNSPorts(intstr.FromInt32(53)),
	}}
}

// EgressAnnotation records the --allow-egress destinations on the
// sandbox's objects, in flag syntax, so `list` and an admin reading the Pod
// see what it may reach without decoding its NetworkPolicy.
func EgressAnnotation(dests []Destination) string {
	s := make([]string, 0, len(dests))
	for _, d := range dests {
		s = append(s, d.String())
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// ValidateLabel checks a label key and value; flag names what set them.
func ValidateLabel(flag, k, v string) error {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return fmt.Errorf("invalid %s key %q: %s", flag, k, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return fmt.Errorf("invalid %s value %q for %s: %s", flag, v, k, strings.Join(errs, "; "))
	}
	return nil
}
