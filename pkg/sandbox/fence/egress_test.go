package fence

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const udp, tcp = corev1.ProtocolUDP, corev1.ProtocolTCP

func TestDetectDNSSaysWhatItFound(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"k8s-app": "kube-dns"}, ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{{Port: 53, Protocol: udp}}},
	}
	f := DetectDNS(context.Background(), fake.NewClientset(svc))
	if f.Default || f.Err != nil || !strings.Contains(f.Found, "Service kube-system/kube-dns: pods k8s-app=kube-dns in kube-system, ports 53/UDP") {
		t.Errorf("kube-dns: %+v", f)
	}
	none := DetectDNS(context.Background(), fake.NewClientset())
	if !none.Default || none.Err != nil || !reflect.DeepEqual(none.Servers, DefaultDNS()) || !strings.Contains(none.Found, "no Service kube-system/kube-dns") {
		t.Errorf("no DNS service: %+v", none)
	}
	cs := fake.NewClientset(svc)
	cs.PrependReactor("get", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "kube-dns", nil)
	})
	forbidden := DetectDNS(context.Background(), cs)
	if !forbidden.Default || !apierrors.IsForbidden(forbidden.Err) || !strings.Contains(forbidden.Found, "cannot read Service kube-system/kube-dns") {
		t.Errorf("forbidden: %+v", forbidden)
	}
	// A Service without selector: its cluster IP.
	manual := svc.DeepCopy()
	manual.Spec.Selector = nil
	m := DetectDNS(context.Background(), fake.NewClientset(manual))
	if len(m.Servers) != 1 || m.Servers[0].CIDR != "10.96.0.10/32" {
		t.Errorf("no selector: %+v", m)
	}
}

func TestExceptWithin(t *testing.T) {
	cases := map[string][]string{
		"0.0.0.0/0": {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "168.63.129.16/32", "169.254.0.0/16", "172.16.0.0/12",
			"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"},
		"::/0": {"::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:10::/28", "2001:20::/28", "2001:db8::/32", "2002::/16",
			"3fff::/20", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8"},
		"169.254.0.0/16":     {"169.254.0.23/32", "169.254.42.42/32", "169.254.169.254/32", "169.254.170.2/32", "169.254.170.23/32"},
		"192.0.0.0/24":       {"192.0.0.192/32"},
		"fd00::/8":           {"fd00:42::42/128", "fd00:c1::a9fe:a9fe/128", "fd00:ec2::23/128", "fd00:ec2::254/128", "fd00:a9fe:a9fe::1/128", "fd20:ce::254/128"},
		"169.254.169.254/32": nil,
		"10.1.2.3/32":        nil,
		"100.64.0.0/10":      {"100.100.100.200/32"},
		"203.0.113.0/24":     nil,
		"64:ff9b::/96": {"64:ff9b::/104", "64:ff9b::a00:0/104", "64:ff9b::6440:0/106", "64:ff9b::7f00:0/104", "64:ff9b::a83f:8110/128", "64:ff9b::a9fe:0/112",
			"64:ff9b::ac10:0/108", "64:ff9b::c000:0/120", "64:ff9b::c000:200/120", "64:ff9b::c058:6300/120", "64:ff9b::c0a8:0/112", "64:ff9b::c612:0/111",
			"64:ff9b::c633:6400/120", "64:ff9b::cb00:7100/120", "64:ff9b::e000:0/100", "64:ff9b::f000:0/100"},
	}
	for cidr, want := range cases {
		got := ExceptWithin(netip.MustParsePrefix(cidr))
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("except within %s:\n got %q\nwant %q", cidr, got, want)
		}
	}
}

func TestEmbedIPv4(t *testing.T) {
	cases := []struct{ prefix, v4, want string }{
		{"64:ff9b::/96", "169.254.169.254/32", "64:ff9b::a9fe:a9fe/128"},
		{"::ffff:0:0:0/96", "10.0.0.0/8", "::ffff:0:a00:0/104"},
		{"64:ff9b:1::/48", "169.254.169.254/32", "64:ff9b:1:a9fe:a9:fe00::/88"}, // RFC 6052: skip the u octet
		{"64:ff9b:1::/48", "10.0.0.0/8", "64:ff9b:1:a00::/56"},
		{"64:ff9b:1::/48", "169.254.0.0/16", "64:ff9b:1:a9fe::/64"},
		{"2002::/16", "10.0.0.0/8", "2002:a00::/24"},
		{"64:ff9b::/96", "0.0.0.0/0", "64:ff9b::/96"},
	}
	for _, c := range cases {
		if got := embedIPv4(netip.MustParsePrefix(c.prefix), netip.MustParsePrefix(c.v4)).String(); got != c.want {
			t.Errorf("%s in %s = %s, want %s", c.v4, c.prefix, got, c.want)
		}
	}
}

func TestParseEgress(t *testing.T) {
	tcp443 := []Port{{Protocol: tcp, Port: intstr.FromInt32(443)}}
	good := map[string]Destination{
		"203.0.113.0/24":           {CIDR: "203.0.113.0/24"},
		"198.51.100.7":             {CIDR: "198.51.100.7/32"},
		"198.51.100.7:443":         {CIDR: "198.51.100.7/32", Ports: tcp443},
		"10.0.0.0/8:5432/tcp":      {CIDR: "10.0.0.0/8", Ports: []Port{{Protocol: tcp, Port: intstr.FromInt32(5432)}}},
		"192.0.2.1:53/UDP":         {CIDR: "192.0.2.1/32", Ports: []Port{{Protocol: udp, Port: intstr.FromInt32(53)}}},
		"192.0.2.1:8000-8100/sctp": {CIDR: "192.0.2.1/32", Ports: []Port{{Protocol: corev1.ProtocolSCTP, Port: intstr.FromInt32(8000), EndPort: 8100}}},
		"192.0.2.1:80-80":          {CIDR: "192.0.2.1/32", Ports: []Port{{Protocol: tcp, Port: intstr.FromInt32(80)}}},
		"2001:db8::/32":            {CIDR: "2001:db8::/32"},
		"2001:db8::/32:443":        {CIDR: "2001:db8::/32", Ports: tcp443},
		"2001:db8::1":              {CIDR: "2001:db8::1/128"},
		"[2001:db8::1]:443":        {CIDR: "2001:db8::1/128", Ports: tcp443},
		"[2001:db8::/32]:443":      {CIDR: "2001:db8::/32", Ports: tcp443},
		"[2001:db8::1]":            {CIDR: "2001:db8::1/128"},
	}
	for in, want := range good {
		got, err := ParseEgress("--allow-egress", in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseEgress(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                    "no address",
		"example.com:443":     "not an IP address",
		"10.1.2.3/8":          "did you mean 10.0.0.0/8",
		"10.0.0.0/33":         "not a CIDR",
		"10.0.0.1:0":          "from 1 to 65535",
		"10.0.0.1:65536":      "from 1 to 65535",
		"10.0.0.1:":           "from 1 to 65535",
		"10.0.0.1:+80":        "from 1 to 65535",
		"10.0.0.1:080":        "from 1 to 65535",
		"10.0.0.1:443/icmp":   "unknown protocol",
		"10.0.0.1:90-80":      "ends before it starts",
		"[2001:db8::1":        "no address",
		"[2001:db8::1]443":    "no address",
		"fe80::1%eth0":        "zone",
		"10.0.0.0/8/tcp":      "not a CIDR",
		"2001:db8::1:443/tcp": "not a CIDR",
		"10.0.0.1:53:53":      "not an IP address",
	}
	for in, want := range bad {
		_, err := ParseEgress("--allow-egress", in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--allow-egress") {
			t.Errorf("ParseEgress(%q) error = %v, want %q", in, err, want)
		}
	}
}

func TestParseDNSServer(t *testing.T) {
	d, err := ParseDNSServer("169.254.20.10")
	want := Destination{CIDR: "169.254.20.10/32", Ports: DNSPorts(intstr.FromInt32(53))}
	if err != nil || !reflect.DeepEqual(d, want) {
		t.Errorf("--dns 169.254.20.10 = %+v, %v", d, err)
	}
	d, err = ParseDNSServer("[fd00::a]:5353")
	if err != nil || d.CIDR != "fd00::a/128" || !reflect.DeepEqual(d.Ports, DNSPorts(intstr.FromInt32(5353))) {
		t.Errorf("--dns [fd00::a]:5353 = %+v, %v", d, err)
	}
	if _, err := ParseDNSServer("10.0.0.10:53/udp"); err == nil || !strings.Contains(err.Error(), "both UDP and TCP") {
		t.Errorf("--dns with a protocol: %v", err)
	}
}

func FuzzParseEgress(f *testing.F) {
	for _, s := range []string{"203.0.113.0/24:443/tcp", "[2001:db8::1]:53/udp", "2001:db8::/32:1-2", "10.0.0.1", "::", "[::]:1", "1.2.3.4:5-6/sctp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseEgress("--allow-egress", s)
		if err != nil {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("%q parsed to an invalid destination %+v: %v", s, d, err)
		}
		again, err := ParseEgress("--allow-egress", d.String())
		if err != nil || !reflect.DeepEqual(again, d) {
			t.Fatalf("%q → %q does not parse back: %+v, %v", s, d.String(), again, err)
		}
		// Rendering must not panic and must yield a valid except list.
		p := netip.MustParsePrefix(d.CIDR)
		for _, e := range ExceptWithin(p) {
			ex := netip.MustParsePrefix(e)
			if !covers(p, ex) || ex == p {
				t.Fatalf("except %s is not strictly inside %s", e, p)
			}
		}
	})
}

// Policies add up: someone else's policy that selects the sandbox and allows
// anything widens its fence; deny-only ones and the plugin's own do not.
