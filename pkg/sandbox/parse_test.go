package sandbox

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseKeyValue(t *testing.T) {
	k, v, err := ParseKeyValue("--env", "A=b=c")
	if err != nil || k != "A" || v != "b=c" {
		t.Fatalf("got %q %q %v", k, v, err)
	}
	if _, _, err := ParseKeyValue("--env", "A="); err != nil {
		t.Fatalf("empty value must be allowed: %v", err)
	}
	for _, bad := range []string{"A", "=b", ""} {
		if _, _, err := ParseKeyValue("--env", bad); err == nil || !strings.Contains(err.Error(), "KEY=VALUE") {
			t.Errorf("ParseKeyValue(%q) = %v", bad, err)
		}
	}
	if _, err := ParseKeyValues("--label", []string{"a=1", "a=2"}); err == nil {
		t.Error("a repeated key must be an error")
	}
}

func TestParsePort(t *testing.T) {
	cases := map[string]corev1.ContainerPort{
		"80":        {ContainerPort: 80, Protocol: corev1.ProtocolTCP},
		"53/udp":    {ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		"9/SCTP":    {ContainerPort: 9, Protocol: corev1.ProtocolSCTP},
		"65535/tcp": {ContainerPort: 65535, Protocol: corev1.ProtocolTCP},
	}
	for in, want := range cases {
		got, err := ParsePort(in)
		if err != nil || got != want {
			t.Errorf("ParsePort(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0", "65536", "-1", "http", "80/icmp", "80/", "1e3"} {
		if _, err := ParsePort(bad); err == nil {
			t.Errorf("ParsePort(%q) accepted", bad)
		}
	}
}

func TestParseQuantity(t *testing.T) {
	if q, err := ParseQuantity("--memory", "512Mi"); err != nil || q.String() != "512Mi" {
		t.Fatalf("got %v %v", q, err)
	}
	for _, bad := range []string{"", "lots", "-1", "0", "1Gx"} {
		if _, err := ParseQuantity("--memory", bad); err == nil {
			t.Errorf("ParseQuantity(%q) accepted", bad)
		}
	}
}

func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"80", "53/udp", "x", "99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			return
		}
		if p.ContainerPort < 1 || p.ContainerPort > 65535 {
			t.Fatalf("ParsePort(%q) accepted port %d", s, p.ContainerPort)
		}
		switch p.Protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			t.Fatalf("ParsePort(%q) gave protocol %q", s, p.Protocol)
		}
	})
}

func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"1", "500m", "2Gi", "0", "-1", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuantity("--cpu", s)
		if err == nil && q.Sign() <= 0 {
			t.Fatalf("ParseQuantity(%q) accepted a non-positive quantity", s)
		}
	})
}

func FuzzParseKeyValue(f *testing.F) {
	for _, s := range []string{"a=b", "=", "a==", "k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, v, err := ParseKeyValue("--env", s)
		if err != nil {
			return
		}
		if k == "" || strings.Contains(k, "=") || k+"="+v != s {
			t.Fatalf("ParseKeyValue(%q) = %q, %q", s, k, v)
		}
	})
}
