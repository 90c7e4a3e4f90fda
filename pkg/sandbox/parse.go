package sandbox

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// ParseKeyValue splits "k=v" (as given to --env, --label, --node-selector).
// The value may itself contain '='; the key may not be empty. flag names
// the value in errors: a flag, or a field in backquotes for a
// field.Error's Detail.
func ParseKeyValue(flag, s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("%s %q: expected KEY=VALUE", flag, s)
	}
	return k, v, nil
}

// ParseKeyValues parses repeated "k=v" flags into a map; a repeated key is an error.
func ParseKeyValues(flag string, items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(items))
	for _, s := range items {
		k, v, err := ParseKeyValue(flag, s)
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%s %s is given twice", flag, k)
		}
		m[k] = v
	}
	return m, nil
}

// ParsePort parses "8080", "8080/tcp" or "53/udp".
func ParsePort(s string) (corev1.ContainerPort, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	n, err := strconv.ParseInt(num, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return corev1.ContainerPort{}, field.Invalid("ports", "`ports` %q: expected a port number from 1 to 65535, optionally followed by /tcp, /udp or /sctp", s)
	}
	p := corev1.ContainerPort{ContainerPort: int32(n), Protocol: corev1.ProtocolTCP}
	if hasProto {
		var ok bool
		if p.Protocol, ok = fence.ProtocolNamed(proto); !ok {
			return corev1.ContainerPort{}, field.Invalid("ports", "`ports` %q: unknown protocol %q, use tcp, udp or sctp", s, proto)
		}
	}
	return p, nil
}

// ParseQuantity parses a resource quantity flag such as --memory 2Gi.
func ParseQuantity(flag, s string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return resource.Quantity{}, fmt.Errorf("%s %q is not a valid quantity (examples: 500m, 2, 512Mi, 4Gi)", flag, s)
	}
	if q.Sign() <= 0 {
		return resource.Quantity{}, fmt.Errorf("%s %q must be greater than zero", flag, s)
	}
	return q, nil
}
